package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// question is one thing --guided can answer: what it asks, the follow-up it
// needs (if any), the flags that answer it, and how to read the answer.
type question struct {
	text string
	// followUp asks for the one value the flags need; nil if none.
	followUp func(inv *inventory.Inventory) string
	flags    func(answer string) []string
	note     string
}

var questions = []question{
	{
		text: "Who is using a GPU?",
		followUp: func(inv *inventory.Inventory) string {
			return "Which GPU? " + choices("this machine has", knownGPUs(inv))
		},
		flags: func(gpu string) []string { return []string{"--gpu", gpu} },
		note:  "Every workload that holds or uses that GPU. 'all' in GPU(S) means the container sees every GPU.",
	},
	{
		text: "What is a user running?",
		followUp: func(inv *inventory.Inventory) string {
			return "Which user? " + choices("in the inventory", knownUsers(inv))
		},
		flags: func(user string) []string { return []string{"--user", user, "--all"} },
		note:  "--all adds the user's stopped containers.",
	},
	{
		text:  "Which GPUs are held but idle?",
		flags: func(string) []string { return []string{"--idle"} },
		note:  "Running containers that declared GPUs and have no process on one: GPUs nobody uses.",
	},
	{
		text:  "Who uses a GPU without declaring it?",
		flags: func(string) []string { return []string{"--undeclared"} },
		note:  "Containers seen on a GPU they were not granted: find out how they were started.",
	},
	{
		text:  "Which GPUs are free, and who is on the others?",
		flags: func(string) []string { return []string{"--by-gpu"} },
		note:  "A heading per GPU with its memory and the workloads on it, then the free GPUs; memory no visible process holds is flagged.",
	},
	{
		text:  "How much GPU does each user have?",
		flags: func(string) []string { return []string{"--by-user", "--gpu-only"} },
		note:  "A heading per user with their GPUs and GPU memory; --wide adds IDs, images and memory.",
	},
	{
		text:  "Everything, in detail",
		flags: func(string) []string { return []string{"--all", "--wide"} },
		note:  "Stopped containers and system processes too, with ID, IMAGE, CPU%, MEM, GPU MEM, USER SOURCE and LAUNCHER.",
	},
}

// guide runs --guided: it asks what the admin wants to know, shows the
// command that answers it, and runs that command. End of input (Ctrl-D)
// ends it at any prompt.
func guide(con console, opts options) error {
	if !con.stdinTerminal {
		return usageError{errors.New("--guided is an interactive walk-through and needs a terminal; " +
			"'ds01-workloads --info' is the full reference")}
	}
	inv, err := loadInventory(opts.path)
	if err != nil {
		return err
	}
	base := []string{"ds01-workloads"}
	if opts.path != defaultInventory {
		base = append(base, "--inventory", opts.path)
	}
	in := bufio.NewReader(con.stdin)
	out := con.stdout
	fmt.Fprintf(out, "This walk-through shows the ds01-workloads command that answers your question, and runs it.\n"+
		"The inventory it reads is %s; the last scan ran %s.\n", inventory.SafeText(opts.path), lastScan(inv, con.now()))
	for {
		fmt.Fprintln(out, "\nWhat do you want to know?")
		for i, q := range questions {
			fmt.Fprintf(out, "  %d) %s\n", i+1, q.text)
		}
		fmt.Fprintln(out, "  q) Quit")
		answer, ok := ask(in, out, "> ")
		if !ok || answer == "q" {
			return nil
		}
		n, err := strconv.Atoi(answer)
		if err != nil || n < 1 || n > len(questions) {
			fmt.Fprintf(out, "Answer 1 to %d, or q to quit.\n", len(questions))
			continue
		}
		q := questions[n-1]
		var value string
		for q.followUp != nil && value == "" {
			if value, ok = ask(in, out, q.followUp(inv)+" > "); !ok {
				return nil
			}
		}
		args := append(slices.Clone(base), q.flags(value)...)
		fmt.Fprintf(out, "\n$ %s\n", inventory.SafeText(shellJoin(args)))
		run(args, con)
		fmt.Fprintf(out, "\n%s\n", q.note)
	}
}

// ask prompts and reads one line. It returns false at the end of input,
// after ending the line the prompt left open.
func ask(in *bufio.Reader, out io.Writer, prompt string) (string, bool) {
	fmt.Fprint(out, prompt)
	line, err := in.ReadString('\n')
	if err != nil {
		fmt.Fprintln(out)
		return "", false
	}
	return strings.TrimSpace(line), true
}

// choices lists what can be answered, a dozen at most.
func choices(what string, names []string) string {
	const most = 12
	switch {
	case len(names) == 0:
		return ""
	case len(names) > most:
		names = append(names[:most:most], "…")
	}
	return "(" + what + ": " + inventory.SafeText(strings.Join(names, ", ")) + ")"
}

// knownGPUs are the GPUs of the inventory's GPU list or, before NVML has
// answered, those the workloads name.
func knownGPUs(inv *inventory.Inventory) []string {
	set := map[string]bool{}
	for _, g := range inv.GPUs {
		set[g.ID] = true
	}
	if len(set) == 0 {
		for _, w := range inv.Workloads() {
			for _, g := range w.GPUs {
				set[g] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// knownUsers are the users the inventory names.
func knownUsers(inv *inventory.Inventory) []string {
	set := map[string]bool{}
	for _, w := range inv.Workloads() {
		set[w.User] = true
	}
	return slices.Sorted(maps.Keys(set))
}

var shellPlain = regexp.MustCompile(`^[A-Za-z0-9@%+=:,./_-]+$`)

// shellJoin quotes args for a POSIX shell, so that the command shown can be
// pasted whatever the admin typed.
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if shellPlain.MatchString(a) {
			quoted[i] = a
		} else {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(quoted, " ")
}
