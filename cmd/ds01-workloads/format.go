package main

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"text/template"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// tablePrefix starts a --format that prints a header row and aligns columns,
// as in docker: --format 'table {{.User}}\t{{.GPUs}}'.
const tablePrefix = "table"

// rowFormat is a parsed --format template.
type rowFormat struct {
	tmpl *template.Template
	// table is true for a "table …" format: a header row, aligned columns.
	table bool
}

// templateFuncs are the functions a --format template can call beyond the
// text/template built-ins.
var templateFuncs = template.FuncMap{
	// truncate cuts text to n terminal columns, marking the cut.
	"truncate": func(s string, n int) string {
		if n <= 0 {
			return s
		}
		return clip(s, n)
	},
}

// parseFormat parses a --format value and tries it on an empty row, and in a
// table on the header, so that an unknown field is a usage error before the
// inventory is read. "table" alone is the built-in table: it returns nil.
// As in docker, `\t` and `\n` written out in the format are a tab and a
// newline.
func parseFormat(format string) (*rowFormat, error) {
	f := &rowFormat{}
	if rest, ok := strings.CutPrefix(format, tablePrefix); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
		if strings.TrimSpace(rest) == "" {
			return nil, nil
		}
		f.table, format = true, rest
	}
	format = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(strings.TrimSpace(format))
	var err error
	if f.tmpl, err = template.New("format").Funcs(templateFuncs).Parse(format); err != nil {
		return nil, fmt.Errorf("--format: %w", err)
	}
	var probe bytes.Buffer
	if err := f.tmpl.Execute(&probe, row{w: &inventory.Workload{}}); err != nil {
		return nil, fmt.Errorf("--format: %w; fields: %s", err, strings.Join(fieldNames(), ", "))
	}
	if f.table {
		if err := f.tmpl.Execute(&probe, headers()); err != nil {
			return nil, fmt.Errorf("--format: %w", err)
		}
	}
	return f, nil
}

// fieldNames lists what a template can use: every column and condition.
func fieldNames() []string {
	names := make([]string, 0, len(allColumns)+len(conditions))
	for _, c := range allColumns {
		names = append(names, c.field)
	}
	for _, c := range conditions {
		names = append(names, c.field)
	}
	return names
}

// headers maps each field to its header: a "table …" template run on it
// prints the header row.
func headers() map[string]string {
	h := make(map[string]string, len(allColumns)+len(conditions))
	for _, c := range allColumns {
		h[c.field] = c.header
	}
	for _, c := range conditions {
		h[c.field] = c.header
	}
	return h
}

// write prints rows with the template: one line per row, or for a table a
// header and the cells (split at tabs) aligned in columns.
func (f *rowFormat) write(w *bufio.Writer, rows []row) error {
	var buf bytes.Buffer
	if !f.table {
		for _, r := range rows {
			buf.Reset()
			if err := f.tmpl.Execute(&buf, r); err != nil {
				return usageError{fmt.Errorf("--format: %w", err)}
			}
			buf.WriteByte('\n')
			w.Write(buf.Bytes())
		}
		return nil
	}
	lines := make([][]string, 0, len(rows)+1)
	for i := -1; i < len(rows); i++ {
		buf.Reset()
		var data any = headers()
		if i >= 0 {
			data = rows[i]
		}
		if err := f.tmpl.Execute(&buf, data); err != nil {
			return usageError{fmt.Errorf("--format: %w", err)}
		}
		lines = append(lines, strings.Split(buf.String(), "\t"))
	}
	widths := columnWidths(lines, 0)
	for _, line := range lines {
		writeLine(w, line, widths, nil)
	}
	return nil
}
