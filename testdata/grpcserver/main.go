// Command grpcserver is an ordinary grpc-go server and client used as an
// unmodified traced program in weft's tests. It serves the standard health
// service (no generated code of its own) with a Check that answers by the
// service name asked: "" OK, "missing" NotFound, "internal" Internal,
// "slow" sleeps 300 ms (callers with shorter deadlines see
// DeadlineExceeded); Watch streams three updates.
//
//	grpcserver                     serve on 127.0.0.1:0, print "LISTEN <port>"
//	grpcserver -call ADDR SERVICE  call Check once, print the status code
//	grpcserver -call ADDR -watch   call Watch, read the stream to its end
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

type health struct {
	healthpb.UnimplementedHealthServer
}

func (health) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch req.Service {
	case "missing":
		return nil, status.Error(codes.NotFound, "no such service")
	case "internal":
		return nil, status.Error(codes.Internal, "it broke")
	case "slow":
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (health) Watch(req *healthpb.HealthCheckRequest, s grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	for range 3 {
		if err := s.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	call := flag.String("call", "", "call Check on this address instead of serving")
	timeout := flag.Duration("timeout", 5*time.Second, "deadline of the call")
	watch := flag.Bool("watch", false, "with -call: call the server-streaming Watch instead")
	flag.Parse()
	if *call != "" {
		conn, err := grpc.NewClient(*call, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			log.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		client := healthpb.NewHealthClient(conn)
		if *watch {
			stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
			for err == nil {
				_, err = stream.Recv()
			}
			if err == io.EOF {
				err = nil
			}
			fmt.Println(status.Code(err))
			return
		}
		_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: flag.Arg(0)})
		fmt.Println(status.Code(err))
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "LISTEN %d\n", ln.Addr().(*net.TCPAddr).Port)
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health{})
	log.Fatal(s.Serve(ln))
}
