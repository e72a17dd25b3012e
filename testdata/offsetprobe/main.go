// Command offsetprobe is built by cmd/offsetgen with each Go toolchain in
// the offsets table; its DWARF gives the struct layouts recorded there. It
// must link the runtime types measured (any Go program links runtime.g and
// runtime.m) and, as the table grows, a use of each library measured.
package main

import (
	"fmt"
	"runtime"
)

func main() {
	fmt.Println(runtime.NumGoroutine())
}
