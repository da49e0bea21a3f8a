package detect

import (
	"testing"

	"github.com/ds01-project/ds01/pkg/inventory"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name      string
		labels    map[string]string
		container string
		want      string
	}{
		// One case per rule.
		{"managed", map[string]string{"ds01.managed": "true"}, "/train", inventory.TypeDS01Managed},
		{"devcontainer label", map[string]string{"devcontainer.local_folder": "/home/a/proj"}, "/eager_turing", inventory.TypeDevcontainer},
		{"devcontainer metadata label", map[string]string{"devcontainer.metadata": "[]"}, "/x", inventory.TypeDevcontainer},
		{"vsc name with slash", nil, "/vsc-proj-1a2b3c", inventory.TypeDevcontainer},
		{"vsc name without slash", nil, "vsc-proj-1a2b3c", inventory.TypeDevcontainer},
		{"compose", map[string]string{"com.docker.compose.project": "stack", "com.docker.compose.service": "web"}, "/stack-web-1", inventory.TypeDockerCompose},
		{"raw", map[string]string{"maintainer": "someone"}, "/jupyter", inventory.TypeRawDocker},
		{"raw nil labels empty name", nil, "", inventory.TypeRawDocker},

		// Priority conflicts.
		{"managed beats devcontainer", map[string]string{"ds01.managed": "true", "devcontainer.local_folder": "/p"}, "/vsc-p", inventory.TypeDS01Managed},
		{"managed beats compose", map[string]string{"ds01.managed": "true", "com.docker.compose.project": "s"}, "/s-1", inventory.TypeDS01Managed},
		{"devcontainer label beats compose", map[string]string{"devcontainer.local_folder": "/p", "com.docker.compose.project": "p_devcontainer"}, "/p_devcontainer-app-1", inventory.TypeDevcontainer},
		{"vsc name beats compose", map[string]string{"com.docker.compose.project": "p"}, "/vsc-p-abc", inventory.TypeDevcontainer},
		{"managed false falls through to raw", map[string]string{"ds01.managed": "false"}, "/t", inventory.TypeRawDocker},
		{"managed false falls through to devcontainer", map[string]string{"ds01.managed": "false", "devcontainer.local_folder": "/p"}, "/t", inventory.TypeDevcontainer},
		{"managed TRUE is not true", map[string]string{"ds01.managed": "TRUE"}, "/t", inventory.TypeRawDocker},

		// Traps.
		{"empty compose project", map[string]string{"com.docker.compose.project": ""}, "/t", inventory.TypeRawDocker},
		{"devcontainer without dot", map[string]string{"devcontainer": "yes"}, "/t", inventory.TypeRawDocker},
		{"vsc inside name", nil, "/my-vsc-thing", inventory.TypeRawDocker},
		{"vsc without dash", nil, "/vscode", inventory.TypeRawDocker},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.labels, tc.container); got != tc.want {
				t.Errorf("Classify(%v, %q) = %q, want %q", tc.labels, tc.container, got, tc.want)
			}
		})
	}
}
