# Shared by the sh scripts (". ./lib.sh"); not executable, so not a script:
# a request for /cgi-bin/lib.sh is refused with 403.

# header writes the CGI header block: the content type, then an empty line.
header() {
	printf 'Content-Type: %s\r\n\r\n' "$1"
}
