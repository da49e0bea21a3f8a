package main

import (
	"strconv"
	"strings"
	"testing"
)

// TestGuidedScript drives --guided through each question with a scripted
// terminal, and ends it every way it can end.
func TestGuidedScript(t *testing.T) {
	tests := []struct {
		name  string
		input string
	}{
		// Every question, a wrong answer, an empty follow-up, then q.
		{"guided-tour", "1\n2:1\n2\n\nalice\n3\n4\n5\n6\n9\nq\n"},
		// End of input at the menu, and mid-question.
		{"guided-eof-menu", ""},
		{"guided-eof-follow-up", "1\n"},
		// A user name that needs quoting, and one with an escape sequence.
		{"guided-quoting", "2\nbob's \x1b[31mfriend\nq\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := invocation{
				args:     []string{"--inventory", fixedInventory, "--guided"},
				stdin:    tc.input,
				terminal: true,
				env:      map[string]string{"NO_COLOR": "1"},
			}
			r := in.run(t)
			if r.code != exitOK {
				t.Errorf("exit %d, want 0; stderr %q", r.code, r.stderr)
			}
			if strings.Contains(r.stdout, "\x1b") {
				t.Errorf("an escape reached the terminal: %q", r.stdout)
			}
			checkGolden(t, tc.name, r.transcript(in.args)+"--- stdin "+strconv.Quote(tc.input)+"\n")
		})
	}
}

func TestShellJoin(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"ds01-workloads", "--gpu", "2:1"}, "ds01-workloads --gpu 2:1"},
		{[]string{"--inventory", "/tmp/my inventory.json"}, "--inventory '/tmp/my inventory.json'"},
		{[]string{"--user", "bob's"}, `--user 'bob'\''s'`},
		{[]string{"--user", "$(reboot)"}, "--user '$(reboot)'"},
		{[]string{"--user", ""}, "--user ''"},
	}
	for _, tc := range tests {
		if got := shellJoin(tc.args); got != tc.want {
			t.Errorf("shellJoin(%q) = %s, want %s", tc.args, got, tc.want)
		}
	}
}
