//go:build docgen

package main

// Built with -tags docgen, this program writes ds01-scan's man page or a
// shell completion instead of scanning (make man completion):
//
//	go run -tags docgen ./cmd/ds01-scan man|bash|zsh

import (
	"os"

	"github.com/ds01-project/ds01/internal/docgen"
)

func init() {
	os.Exit(docgen.Main(newApp(os.Stdout, os.Stderr), docgen.Page{
		Section: 8,
		Sections: []docgen.Section{
			{Title: "Files", Items: [][2]string{
				{"/var/lib/ds01/workload-inventory.json", "The inventory (mode 0644, JSON, schema_version 1), replaced atomically by each scan. A corrupt one is moved aside to workload-inventory.json.corrupt-TIME; one written by the lab's detect-workloads.py is taken over by the first scan that sees Docker and the GPUs, and kept as workload-inventory.json.detect-workloads-TIME."},
				{"/var/log/ds01/events.jsonl", "The event log: one JSON event per line, appended; created 0664 root:docker where a docker group exists. Rotated by the lab's /etc/logrotate.d/ds01 where it has one, else by /etc/logrotate.d/ds01-scan (events.jsonl-YYYYMMDD, compressed)."},
				{"/run/ds01/scan.lock", "flock that keeps scans one at a time; a second scan waits 5 s, then exits 0."},
				{"ds01-scan.service, ds01-scan.timer", "The hardened oneshot unit and the timer that runs it every 30 s. A drop-in (systemctl edit ds01-scan.service) adds flags such as --textfile-dir; examples are under /usr/share/doc/ds01/examples (/usr/local/share/doc/ds01/examples for a make install)."},
			}},
			{Title: "Environment", Items: [][2]string{
				{"DOCKER_HOST", "The Docker engine to ask, as --docker-host."},
			}},
			{Title: "Exit status", Items: [][2]string{
				{"0", "The scan completed (a source may have been down: the inventory and the event log say which), or another scan held the lock."},
				{"1", "The scan could not complete."},
				{"2", "Usage error."},
			}},
			{Title: "See also", Text: "ds01-workloads(1), systemd.timer(5), logrotate(8)"},
		},
	}, os.Args[1:]))
}
