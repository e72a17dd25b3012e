// Command offsetprobe-grpc is built by cmd/offsetgen against each grpc-go
// release in the offsets table, one modfile per release (go.<version>.mod,
// resolved by go mod tidy from that release's own requirements, so x/net is
// the version that grpc release asks for). Its DWARF gives the layouts of
// grpc's and x/net's HTTP/2 types recorded there. It must link the types
// measured: a server and a client that call it keep both halves of grpc's
// HTTP/2 transport (streams, header frames, the loopy writer's items).
//
// It is never run by offsetgen; run with an argument, it makes one call to
// itself.
package main

import (
	"context"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	if len(os.Args) < 2 { // always in offsetgen; the code below stays linked
		return
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go s.Serve(lis)
	// grpc.Dial, not NewClient: it exists in every release measured.
	cc, err := grpc.Dial(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println(resp, err)
}
