// Command vcsim serves VMware's vCenter simulator (govmomi/simulator) for
// CampusCloud's tests and local development.
//
// Debian ships the simulator as a Go library but no program, so this is the
// program. It prints the SDK URL (without credentials) on stdout once the
// server accepts connections. Any non-empty user and password log in, unless
// -username/-password name the only account.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	listen := flag.String("l", "127.0.0.1:18989", "listen address (port 0 picks a free port)")
	dc := flag.Int("dc", 1, "datacenters")
	cluster := flag.Int("cluster", 1, "clusters per datacenter")
	host := flag.Int("host", 3, "hosts per cluster")
	standalone := flag.Int("standalone-host", 0, "standalone hosts per datacenter (each gets -vm VMs too)")
	pool := flag.Int("pool", 0, "child resource pools per cluster (each gets -vm VMs too)")
	vms := flag.Int("vm", 4, "VMs per resource pool; with the defaults this is the total VM count")
	ds := flag.Int("ds", 1, "datastores")
	pg := flag.Int("pg", 1, "distributed portgroups per datacenter")
	templates := flag.String("template", "template-linux", "comma-separated templates to create (powered off, 1 vCPU, 1 GiB, 16 GiB disk); empty for none")
	autostart := flag.Bool("autostart", true, "power on the generated VMs")
	useTLS := flag.Bool("tls", false, "serve https with a self-signed localhost certificate")
	certFile := flag.String("tlscert", "", "PEM certificate for -tls (default: built-in localhost certificate)")
	keyFile := flag.String("tlskey", "", "PEM key for -tlscert")
	username := flag.String("username", "", "the only user allowed to log in (default: any non-empty user and password)")
	password := flag.String("password", "", "password of -username")
	flag.Parse()

	model := simulator.VPX()
	model.Datacenter = *dc
	model.Cluster = *cluster
	model.ClusterHost = *host
	model.Host = *standalone
	model.Pool = *pool
	model.Machine = *vms
	model.Datastore = *ds
	model.Portgroup = *pg
	model.Autostart = *autostart

	if err := model.Create(); err != nil {
		log.Fatalf("vcsim: create model: %v", err)
	}
	// The datastores live in temp dirs that Remove() deletes; do it on every exit path.
	defer model.Remove()

	if *useTLS {
		cfg := &tls.Config{}
		if *certFile != "" {
			cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
			if err != nil {
				log.Fatalf("vcsim: load TLS key pair: %v", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		model.Service.TLS = cfg
	}
	model.Service.Listen = &url.URL{Host: *listen}
	if *username != "" {
		// The simulator then refuses every other login with InvalidLogin, as a vCenter would.
		model.Service.Listen.User = url.UserPassword(*username, *password)
	}
	server := model.Service.NewServer()
	defer server.Close()

	if names := strings.TrimSpace(*templates); names != "" {
		if err := createTemplates(server.URL, strings.Split(names, ",")); err != nil {
			log.Fatalf("vcsim: templates: %v", err)
		}
	}

	u := *server.URL
	u.User = nil
	fmt.Println(u.String())
	os.Stdout.Sync()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}

// createTemplates adds powered-off templates (1 vCPU, 1 GiB, a 16 GiB disk, a NIC on
// the first network), because the generated inventory has none. They are created from
// scratch, not cloned: this simulator version's clone rewrites the source VM's disk path.
func createTemplates(u *url.URL, names []string) error {
	ctx := context.Background()
	client, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		return err
	}
	defer func() { _ = client.Logout(ctx) }()

	finder := find.NewFinder(client.Client, false)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		dcs, lerr := finder.DatacenterList(ctx, "*")
		if lerr != nil {
			return lerr
		}
		dc = dcs[0]
	}
	finder.SetDatacenter(dc)
	folders, err := dc.Folders(ctx)
	if err != nil {
		return err
	}
	pools, err := finder.ResourcePoolList(ctx, "*")
	if err != nil {
		return err
	}
	datastores, err := finder.DatastoreList(ctx, "*")
	if err != nil {
		return err
	}
	networks, err := finder.NetworkList(ctx, "*")
	if err != nil {
		return err
	}
	backing, err := networks[0].EthernetCardBackingInfo(ctx)
	if err != nil {
		return err
	}
	for _, name := range names {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		var devices object.VirtualDeviceList
		scsi, _ := devices.CreateSCSIController("pvscsi")
		devices = append(devices, scsi)
		disk := devices.CreateDisk(scsi.(types.BaseVirtualController), datastores[0].Reference(), "")
		disk.CapacityInKB = 16 * 1024 * 1024
		nic, err := devices.CreateEthernetCard("vmxnet3", backing)
		if err != nil {
			return err
		}
		devices = append(devices, disk, nic)
		changes, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
		if err != nil {
			return err
		}
		spec := types.VirtualMachineConfigSpec{
			Name:         name,
			GuestId:      string(types.VirtualMachineGuestOsIdentifierOtherGuest64),
			NumCPUs:      1,
			MemoryMB:     1024,
			Files:        &types.VirtualMachineFileInfo{VmPathName: "[" + datastores[0].Name() + "]"},
			DeviceChange: changes,
		}
		task, err := folders.VmFolder.CreateVM(ctx, spec, pools[0], nil)
		if err != nil {
			return err
		}
		info, err := task.WaitForResult(ctx, nil)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		vm := object.NewVirtualMachine(client.Client, info.Result.(types.ManagedObjectReference))
		if err := vm.MarkAsTemplate(ctx); err != nil {
			return fmt.Errorf("mark %s as template: %w", name, err)
		}
	}
	return nil
}
