// Package docgen writes a command's man page and its bash and zsh
// completions from the command's urfave/cli definition, so that the
// documentation installed with ds01 is the command line it documents.
//
// Each command has a docgen.go built only with -tags docgen whose init hands
// its cli.App to Main; `make man completion` runs those builds:
//
//	go run -tags docgen ./cmd/ds01-scan man|bash|zsh
package docgen

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// Page is what a man page needs beyond the cli.App.
type Page struct {
	// Section is the manual section: 1 for user commands, 8 for root's.
	Section int
	// Description is the DESCRIPTION when the App has none, in paragraphs
	// separated by blank lines.
	Description string
	// Sections follow OPTIONS: FILES, ENVIRONMENT, EXIT STATUS, SEE ALSO.
	Sections []Section
	// Values are the words a flag takes, for completion ("type" → types).
	Values map[string][]string
	// UserFlags take a user name.
	UserFlags []string
}

// Section is one extra man page section: paragraphs of Text, then Items as
// a tagged list (term, explanation).
type Section struct {
	Title string
	Text  string
	Items [][2]string
}

// Main writes what args[0] names (man, bash or zsh) to stdout and returns
// the exit code.
func Main(app *cli.App, page Page, args []string) int {
	return run(app, page, args, os.Stdout, os.Stderr)
}

func run(app *cli.App, page Page, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: (docgen build of a ds01 command) man|bash|zsh")
		return 2
	}
	// Setup adds --help and --version, which the page and completions list.
	app.Setup()
	var err error
	switch args[0] {
	case "man":
		err = writeMan(stdout, app, page)
	case "bash":
		err = writeBash(stdout, app, page)
	case "zsh":
		err = writeZsh(stdout, app, page)
	default:
		fmt.Fprintf(stderr, "docgen: unknown output %q: want man, bash or zsh\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "docgen: %v\n", err)
		return 1
	}
	return 0
}

// flag is what completion and the man page need to know about one flag.
type flag struct {
	long, short []string // without dashes
	usage       string   // backticks removed
	placeholder string   // the `WORD` of the usage, if any
	takesValue  bool
	repeatable  bool
}

var placeholderRE = regexp.MustCompile("`([^`]*)`")

func flagsOf(app *cli.App) []flag {
	var out []flag
	for _, f := range app.VisibleFlags() {
		d, ok := f.(cli.DocGenerationFlag)
		if !ok {
			continue
		}
		var fl flag
		for _, n := range d.Names() {
			if len(n) == 1 {
				fl.short = append(fl.short, n)
			} else {
				fl.long = append(fl.long, n)
			}
		}
		fl.usage = d.GetUsage()
		if m := placeholderRE.FindStringSubmatch(fl.usage); m != nil {
			fl.placeholder = m[1]
		}
		fl.usage = strings.ReplaceAll(fl.usage, "`", "")
		fl.takesValue = d.TakesValue()
		if s, ok := f.(cli.DocGenerationSliceFlag); ok {
			fl.repeatable = s.IsSliceFlag()
		}
		out = append(out, fl)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name() < out[j].name() })
	return out
}

func (f flag) name() string {
	if len(f.long) > 0 {
		return f.long[0]
	}
	return f.short[0]
}

func (f flag) spellings() []string {
	var s []string
	for _, l := range f.long {
		s = append(s, "--"+l)
	}
	for _, c := range f.short {
		s = append(s, "-"+c)
	}
	return s
}

// valueKind says how a flag's value completes: words from Page.Values, a
// user name, a directory, a file, or anything (no completion).
func (f flag) valueKind(page Page) (kind string, words []string) {
	if w, ok := page.Values[f.name()]; ok {
		return "words", w
	}
	for _, u := range page.UserFlags {
		if u == f.name() {
			return "user", nil
		}
	}
	switch f.placeholder {
	case "DIR":
		return "dir", nil
	case "FILE", "PATH":
		return "file", nil
	}
	return "any", nil
}

// writeMan renders the App with cli's own man page generator (ToMan, through
// go-md2man), then tidies it for a command without subcommands and adds the
// Page's sections.
func writeMan(w io.Writer, app *cli.App, page Page) error {
	if app.Description == "" && page.Description != "" {
		app.Description = page.Description
	}
	if app.UsageText == "" {
		// cli's default speaks of commands, which these have none of.
		app.UsageText = app.Name + " [OPTIONS]"
	}
	man, err := app.ToManWithSection(page.Section)
	if err != nil {
		return err
	}
	// These commands have no subcommands: their flags are the OPTIONS.
	man = strings.Replace(man, ".SH GLOBAL OPTIONS", ".SH OPTIONS", 1)
	var b strings.Builder
	b.WriteString(strings.TrimRight(man, "\n"))
	b.WriteString("\n")
	for _, s := range page.Sections {
		fmt.Fprintf(&b, ".SH %s\n", roff(strings.ToUpper(s.Title)))
		for i, p := range paragraphs(s.Text) {
			if i > 0 {
				b.WriteString(".PP\n")
			}
			b.WriteString(roff(p) + "\n")
		}
		for _, it := range s.Items {
			fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roff(it[0]), roff(it[1]))
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

func paragraphs(s string) []string {
	var out []string
	for _, p := range strings.Split(strings.TrimSpace(s), "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, strings.Join(strings.Fields(p), " "))
		}
	}
	return out
}

// roff escapes plain text for a roff text line.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// shellName turns a command name into a shell function name.
func shellName(name string) string {
	return "_" + strings.NewReplacer("-", "_", ".", "_").Replace(name)
}

// bashQuote quotes s for a bash single-quoted word.
func bashQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func writeBash(w io.Writer, app *cli.App, page Page) error {
	fn := shellName(app.Name)
	flags := flagsOf(app)
	var all []string
	byKind := map[string][]string{}
	var wordCases []string
	for _, f := range flags {
		all = append(all, f.spellings()...)
		if !f.takesValue {
			continue
		}
		kind, words := f.valueKind(page)
		if kind == "words" {
			wordCases = append(wordCases, fmt.Sprintf("\t%s)\n\t\tmapfile -t COMPREPLY < <(compgen -W %s -- \"$cur\")\n\t\treturn\n\t\t;;",
				strings.Join(f.spellings(), " | "), bashQuote(strings.Join(words, " "))))
			continue
		}
		byKind[kind] = append(byKind[kind], f.spellings()...)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s                         -*- shell-script -*-\n", app.Name)
	fmt.Fprintf(&b, "# Generated from the command's flag definitions (make completion); do not edit.\n\n")
	fmt.Fprintf(&b, "%s() {\n", fn)
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=\n")
	b.WriteString("\t[ \"$COMP_CWORD\" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}\n")
	b.WriteString("\tCOMPREPLY=()\n")
	b.WriteString("\tcase $prev in\n")
	for _, c := range wordCases {
		b.WriteString(c + "\n")
	}
	if s := byKind["user"]; len(s) > 0 {
		fmt.Fprintf(&b, "\t%s)\n\t\tmapfile -t COMPREPLY < <(compgen -u -- \"$cur\")\n\t\treturn\n\t\t;;\n", strings.Join(s, " | "))
	}
	if s := byKind["dir"]; len(s) > 0 {
		fmt.Fprintf(&b, "\t%s)\n\t\tcompopt -o filenames 2>/dev/null\n\t\tmapfile -t COMPREPLY < <(compgen -d -- \"$cur\")\n\t\treturn\n\t\t;;\n", strings.Join(s, " | "))
	}
	if s := byKind["file"]; len(s) > 0 {
		fmt.Fprintf(&b, "\t%s)\n\t\tcompopt -o filenames 2>/dev/null\n\t\tmapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n\t\treturn\n\t\t;;\n", strings.Join(s, " | "))
	}
	if s := byKind["any"]; len(s) > 0 {
		fmt.Fprintf(&b, "\t%s)\n\t\t# A value of the user's choosing.\n\t\treturn\n\t\t;;\n", strings.Join(s, " | "))
	}
	b.WriteString("\tesac\n")
	fmt.Fprintf(&b, "\tmapfile -t COMPREPLY < <(compgen -W %s -- \"$cur\")\n", bashQuote(strings.Join(all, " ")))
	b.WriteString("}\n")
	fmt.Fprintf(&b, "complete -F %s %s\n", fn, app.Name)
	_, err := io.WriteString(w, b.String())
	return err
}

// zshQuote makes s safe inside a single-quoted _arguments spec: the quote
// closes the word, and _arguments takes a backslash as an escape and ']'
// and ':' as the ends of fields, so those are escaped with a backslash.
func zshQuote(s string) string {
	return strings.NewReplacer("'", `'\''`, `\`, `\\`, "[", `\[`, "]", `\]`, ":", `\:`).Replace(s)
}

func writeZsh(w io.Writer, app *cli.App, page Page) error {
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n", app.Name)
	fmt.Fprintf(&b, "# zsh completion for %s.\n", app.Name)
	b.WriteString("# Generated from the command's flag definitions (make completion); do not edit.\n\n")
	b.WriteString("_arguments -s -S \\\n")
	for _, f := range flagsOf(app) {
		sp := f.spellings()
		exclusive := ""
		switch {
		case f.name() == "help" || f.name() == "version":
			exclusive = "(- *)"
		case f.repeatable:
			exclusive = "*"
		case len(sp) > 1:
			exclusive = "(" + strings.Join(sp, " ") + ")"
		}
		names := sp[0]
		if len(sp) > 1 {
			names = "{" + strings.Join(sp, ",") + "}"
		}
		action := ""
		if f.takesValue {
			ph := f.placeholder
			if ph == "" {
				ph = "value"
			}
			kind, words := f.valueKind(page)
			switch kind {
			case "words":
				action = ":" + zshQuote(ph) + ":(" + zshQuote(strings.Join(words, " ")) + ")"
			case "user":
				action = ":" + zshQuote(ph) + ":_users"
			case "dir":
				action = ":" + zshQuote(ph) + ":_directories"
			case "file":
				action = ":" + zshQuote(ph) + ":_files"
			default:
				action = ":" + zshQuote(ph) + ": "
			}
			if len(sp) == 1 && strings.HasPrefix(sp[0], "--") {
				// --flag=value as well as --flag value.
				names = sp[0] + "="
			}
		}
		if exclusive != "" {
			exclusive = "'" + exclusive + "'"
		}
		fmt.Fprintf(&b, "\t%s%s'[%s]%s' \\\n", exclusive, names, zshQuote(f.usage), action)
	}
	b.WriteString("\t&& return 0\n")
	_, err := io.WriteString(w, b.String())
	return err
}
