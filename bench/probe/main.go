// Command probe is the floor of a script container's start: it dials the
// unix socket named by its argument and sends one byte, nothing else.
package main

import (
	"net"
	"os"
)

func main() {
	c, err := net.Dial("unix", os.Args[1])
	if err != nil {
		os.Exit(1)
	}
	_, _ = c.Write([]byte{1})
	_ = c.Close()
}
