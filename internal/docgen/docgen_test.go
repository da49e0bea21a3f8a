package docgen

import (
	"bytes"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func testApp() *cli.App {
	return &cli.App{
		Name:            "ds01-demo",
		Usage:           "a demo: with a colon",
		Version:         "1.0",
		HideHelpCommand: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state-dir", Usage: "state in `DIR`"},
			&cli.StringFlag{Name: "inventory", Usage: "read `PATH`"},
			&cli.StringSliceFlag{Name: "type", Aliases: []string{"t"}, Usage: "only `TYPE` [a or b]: 'x'"},
			&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "only user `NAME`"},
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "everything"},
			&cli.StringFlag{Name: "secret", Hidden: true},
		},
	}
}

var testPage = Page{
	Section:     1,
	Description: "First paragraph\nwrapped.\n\n.Second paragraph starts with a dot.",
	Sections: []Section{
		{Title: "Exit status", Items: [][2]string{{"0", "fine"}, {"2", `usage \ error`}}},
		{Title: "See also", Text: "ds01-scan(8)"},
	},
	Values:    map[string][]string{"type": {"a", "b"}},
	UserFlags: []string{"user"},
}

func generate(t *testing.T, what string) string {
	t.Helper()
	var out, errs bytes.Buffer
	if code := run(testApp(), testPage, []string{what}, &out, &errs); code != 0 {
		t.Fatalf("%s: exit %d: %s", what, code, errs.String())
	}
	return out.String()
}

func TestMan(t *testing.T) {
	man := generate(t, "man")
	for _, want := range []string{
		".TH ds01-demo 1", ".SH OPTIONS", "\\fB--state-dir\\fP", "\\fB--help, -h\\fP", "\\fB--version, -v\\fP",
		".SH DESCRIPTION", ".SH EXIT STATUS\n.TP\n.B 0\nfine\n", `usage \e error`,
		".SH SEE ALSO\nds01\\-scan(8)\n",
	} {
		if !strings.Contains(man, want) {
			t.Errorf("man page lacks %q:\n%s", want, man)
		}
	}
	if strings.Contains(man, "secret") {
		t.Error("man page documents a hidden flag")
	}
	if strings.Contains(man, "GLOBAL OPTIONS") || strings.Contains(man, "COMMANDS") {
		t.Errorf("man page of a command without subcommands mentions them:\n%s", man)
	}
}

func TestBash(t *testing.T) {
	b := generate(t, "bash")
	for _, want := range []string{
		"complete -F _ds01_demo ds01-demo",
		"--type | -t)\n\t\tmapfile -t COMPREPLY < <(compgen -W 'a b' -- \"$cur\")",
		"--user | -u)\n\t\tmapfile -t COMPREPLY < <(compgen -u -- \"$cur\")",
		"--state-dir)\n\t\tcompopt -o filenames 2>/dev/null\n\t\tmapfile -t COMPREPLY < <(compgen -d",
		"--inventory)\n\t\tcompopt -o filenames 2>/dev/null\n\t\tmapfile -t COMPREPLY < <(compgen -f",
		"'--all -a --help -h --inventory --state-dir --type -t --user -u --version -v'",
	} {
		if !strings.Contains(b, want) {
			t.Errorf("bash completion lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(b, "secret") {
		t.Error("bash completion offers a hidden flag")
	}
}

func TestZsh(t *testing.T) {
	z := generate(t, "zsh")
	for _, want := range []string{
		"#compdef ds01-demo\n",
		`'*'{--type,-t}'[only TYPE \[a or b\]\: '\''x'\'']:TYPE:(a b)'`,
		`'(--user -u)'{--user,-u}'[only user NAME]:NAME:_users'`,
		`--state-dir='[state in DIR]:DIR:_directories'`,
		`'(- *)'{--help,-h}'[show help]'`,
	} {
		if !strings.Contains(z, want) {
			t.Errorf("zsh completion lacks %q:\n%s", want, z)
		}
	}
}

func TestUsage(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run(testApp(), testPage, []string{"fish"}, &out, &errs); code != 2 {
		t.Errorf("unknown output: exit %d, want 2", code)
	}
	if code := run(testApp(), testPage, nil, &out, &errs); code != 2 {
		t.Errorf("no argument: exit %d, want 2", code)
	}
}
