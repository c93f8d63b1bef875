// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3/etcdmain
// (the etcd repository's own main module is not consumable as a dependency).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
