package static

import (
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
)

// finalPath returns the absolute path, every symlink resolved, of the file
// open as descriptor fd, which was opened as name. The result may use buf.
//
// On Linux it asks the kernel which file the descriptor refers to, through
// /proc/self/fd, so the answer is about the very file that will be served: a
// symlink swapped between the check and the read cannot redirect it. Where
// that is not available it falls back to resolving name again with
// filepath.EvalSymlinks.
func finalPath(fd int, name string, buf []byte) ([]byte, error) {
	if runtime.GOOS == "linux" {
		link := "/proc/self/fd/" + strconv.Itoa(fd)
		for range 2 {
			n, err := syscall.Readlink(link, buf)
			if err != nil {
				break
			}
			if n < len(buf) {
				return buf[:n], nil
			}
			buf = make([]byte, 16<<10) // longer than PATH_MAX
		}
	}
	real, err := filepath.EvalSymlinks(name)
	if err != nil {
		return nil, err
	}
	return []byte(real), nil
}
