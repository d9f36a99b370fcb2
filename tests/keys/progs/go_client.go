// A minimal Go TLS client: the doctor must say that only tls.Config.KeyLogWriter helps.
package main

import (
	"crypto/tls"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 {
		conn, err := tls.Dial("tcp", os.Args[1], &tls.Config{InsecureSkipVerify: true})
		fmt.Println(conn, err)
	}
}
