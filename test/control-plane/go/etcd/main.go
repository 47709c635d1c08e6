// Test tooling only: the etcd server the end-to-end suite's kube-apiserver stores into, built from
// go.etcd.io/etcd/server/v3 at one pinned release. Not part of the product or its image.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
