// Command apicount is a benchmark aid: a proxy on a unix socket in front of a
// Docker engine that counts the API requests passing through. GET /_count on
// the proxy answers the count so far (and is not forwarded or counted).
//
//	go run ./hack/apicount -listen /tmp/proxy.sock -engine /tmp/engine/docker.sock
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"sync/atomic"
)

func main() {
	listen := flag.String("listen", "", "unix socket to listen on")
	engine := flag.String("engine", "", "the engine's unix socket")
	flag.Parse()
	if *listen == "" || *engine == "" {
		fmt.Fprintln(os.Stderr, "usage: apicount -listen SOCKET -engine SOCKET")
		os.Exit(2)
	}
	var count atomic.Int64
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker"
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", *engine)
		}},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_count" {
			fmt.Fprintln(w, count.Load())
			return
		}
		count.Add(1)
		proxy.ServeHTTP(w, r)
	})
	os.Remove(*listen)
	l, err := net.Listen("unix", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.Serve(l, handler))
}
