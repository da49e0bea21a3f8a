package detect

import (
	"strings"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// Labels and name prefixes that reveal a container's origin.
const (
	labelManaged        = "ds01.managed"
	labelDevcontainerNS = "devcontainer."
	labelComposeProject = "com.docker.compose.project"
	namePrefixVSCode    = "vsc-"
)

// Classify returns the origin of a Docker container from its labels and
// name: one of inventory.TypeDS01Managed, TypeDevcontainer,
// TypeDockerCompose or TypeRawDocker. The name may carry Docker's leading
// "/".
//
// The first rule that matches wins, most specific origin first:
//
//  1. ds01.managed=true: ds01 created it, whatever else it carries
//     (the ds01 tooling may itself set devcontainer or compose labels).
//  2. any devcontainer.* label, or a name starting "vsc-": VS Code Dev
//     Containers can run through compose, so a devcontainer that also
//     carries a compose project is still a devcontainer.
//  3. a non-empty com.docker.compose.project label.
//  4. anything else is raw Docker.
//
// TypeUnknown is never returned: it belongs to containers that could not be
// inspected or were seen only through a cgroup, which the caller knows and
// this function does not.
func Classify(labels map[string]string, name string) string {
	if labels[labelManaged] == "true" {
		return inventory.TypeDS01Managed
	}
	if strings.HasPrefix(strings.TrimPrefix(name, "/"), namePrefixVSCode) {
		return inventory.TypeDevcontainer
	}
	for k := range labels {
		if strings.HasPrefix(k, labelDevcontainerNS) {
			return inventory.TypeDevcontainer
		}
	}
	if labels[labelComposeProject] != "" {
		return inventory.TypeDockerCompose
	}
	return inventory.TypeRawDocker
}
