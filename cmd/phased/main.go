// Command phased is a master/worker HTTP server in the manner of Apache httpd.
// See core/cli for the command line.
package main

import (
	"os"

	"github.com/phasedhq/phased/core/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
