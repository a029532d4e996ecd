// Command listener is the service of the services bench: it listens on the
// TCP port given as its argument, prints the time it began to (Unix
// nanoseconds, one line on stdout), then answers every connection with a
// line until it is stopped. The time is the service's own: what its
// dependents' start is measured against.
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	l, err := net.Listen("tcp", ":"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(time.Now().UnixNano())
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		_, _ = c.Write([]byte("ok\n"))
		_ = c.Close()
	}
}
