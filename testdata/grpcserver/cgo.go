//go:build weftcgo

package main

// Built with -tags weftcgo (and CGO_ENABLED=1), the program calls a C
// library function of its own, as programs linking librdkafka or libpq do:
// weft keeps such a program's sockets out of the injector's sockhash (a C
// library may size reads with FIONREAD), so its context travels only in
// the TCP option.

/*
#include <unistd.h>
*/
import "C"

func init() { _ = C.getpid() }
