package inventory

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// decodeStd decodes data as encoding/json does: the reference the decoder
// is held to.
func decodeStd(data []byte) (Inventory, error) {
	inv := Inventory{SchemaVersion: -1}
	err := json.Unmarshal(data, &inv)
	return inv, err
}

func decodeOwn(data []byte) (Inventory, error) {
	inv := Inventory{SchemaVersion: -1}
	err := decodeInventory(string(data), &inv)
	return inv, err
}

// TestKeySetsCoverSchema fails when a field is added to a struct of the
// schema but not to its decoder.
func TestKeySetsCoverSchema(t *testing.T) {
	for _, tc := range []struct {
		v  any
		ks *keySet
	}{
		{Inventory{}, inventoryKeys}, {ScanInfo{}, scanKeys}, {SourceStatus{}, sourceKeys},
		{GPUDevice{}, gpuDeviceKeys}, {GPUAccess{}, gpuAccessKeys}, {GPUProcess{}, gpuProcessKeys},
		{Container{}, containerKeys}, {HostProcess{}, hostProcessKeys},
	} {
		typ := reflect.TypeOf(tc.v)
		var tags []string
		for f := range typ.Fields() {
			tags = append(tags, strings.Split(f.Tag.Get("json"), ",")[0])
		}
		got := slices.Clone(tc.ks.names)
		slices.Sort(tags)
		slices.Sort(got)
		if !slices.Equal(got, tags) {
			t.Errorf("%s: decoder keys %v, struct tags %v", typ.Name(), got, tags)
		}
	}
}

// fill sets every field reachable from v to a distinct value that is not
// zero, so that a field the decoder drops or puts in the wrong place shows.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n) * 1_000_003)
	case reflect.Uint32:
		v.SetUint(uint64(*n))
	case reflect.Uint64:
		v.SetUint(uint64(*n) << 40)
	case reflect.Float64:
		v.SetFloat(float64(*n) + 0.25)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0), n)
		fill(v.Index(1), n)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			e := reflect.New(v.Type().Elem()).Elem()
			fill(e, n)
			v.SetMapIndex(reflect.ValueOf(fmt.Sprintf("k%d", *n)), e)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 1, 0, 0, *n, *n, time.FixedZone("", 3600*(*n%12)))))
			return
		}
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	default:
		panic("fill: no rule for " + v.Type().String())
	}
}

// TestDecodeEveryField: an inventory with every field set decodes to what
// encoding/json decodes, field for field.
func TestDecodeEveryField(t *testing.T) {
	var full Inventory
	n := 0
	fill(reflect.ValueOf(&full).Elem(), &n)
	for _, indent := range []bool{false, true} {
		var data []byte
		var err error
		if indent {
			data, err = json.MarshalIndent(&full, "", "\t")
		} else {
			data, err = json.Marshal(&full)
		}
		if err != nil {
			t.Fatal(err)
		}
		want, err := decodeStd(data)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeOwn(data)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decoded %+v\nencoding/json %+v", got, want)
		}
	}
}

// TestDecodeEdges pins what the decoder does where encoding/json has
// particular rules, and the one place it is stricter.
func TestDecodeEdges(t *testing.T) {
	id := strings.Repeat("ab", 32)
	tests := []struct {
		name, data string
		want       func(*Inventory) bool
		err        string
	}{
		{"null document", `null`, func(inv *Inventory) bool { return inv.SchemaVersion == -1 }, ""},
		{"empty and null lists", `{"containers":[],"host_processes":null}`,
			func(inv *Inventory) bool {
				return inv.Containers != nil && len(inv.Containers) == 0 && inv.HostProcesses == nil
			}, ""},
		{"null element", `{"containers":[null]}`, func(inv *Inventory) bool { return len(inv.Containers) == 1 && inv.Containers[0].ID == "" }, ""},
		{"null map value", `{"containers":[{"labels":{"a":null}}]}`,
			func(inv *Inventory) bool { v, ok := inv.Containers[0].Labels["a"]; return ok && v == "" }, ""},
		{"null keeps a value", `{"scan":{"id":"x","id2":null},"schema_version":null}`,
			func(inv *Inventory) bool { return inv.Scan.ID == "x" && inv.SchemaVersion == -1 }, ""},
		{"case-insensitive key", `{"Schema_Version":1}`, func(inv *Inventory) bool { return inv.SchemaVersion == 1 }, ""},
		{"escapes and surrogates", `{"scan":{"id":"\u001b[2J\ud83d\ude00\ud800x\/\"\\"}}`,
			func(inv *Inventory) bool { return inv.Scan.ID == "\x1b[2J😀\uFFFDx/\"\\" }, ""},
		{"invalid UTF-8", "{\"scan\":{\"id\":\"a\xffb\xc3\"}}", func(inv *Inventory) bool { return inv.Scan.ID == "a\uFFFDb\uFFFD" }, ""},
		{"unknown keys of every kind", `{"x":{"y":[1,-2.5e3,true,false,null,"s",{}]},"schema_version":1}`,
			func(inv *Inventory) bool { return inv.SchemaVersion == 1 }, ""},
		{"duplicate key", `{"schema_version":1,"schema_version":1}`, nil, `"schema_version" appears twice`},
		{"duplicate key in another case", `{"schema_version":1,"SCHEMA_VERSION":1}`, nil, "appears twice"},
		{"duplicate label", `{"containers":[{"id":"` + id + `","labels":{"a":"1","a":"2"}}]}`, nil, `"a" appears twice in "labels"`},
		{"float for an integer", `{"schema_version":1.5}`, nil, `field "schema_version" holds the number 1.5`},
		{"negative unsigned", `{"containers":[{"cpu_usage_ns":-1}]}`, nil, `field "cpu_usage_ns" holds the number -1`},
		{"uint32 overflow", `{"host_processes":[{"sm_util_percent":4294967296}]}`, nil, "sm_util_percent"},
		{"float overflow", `{"containers":[{"cpu_percent":1e400}]}`, nil, "out of range"},
		{"string for a bool", `{"containers":[{"stale":"yes"}]}`, nil, `field "stale" holds a JSON string, want true or false`},
		{"bad time", `{"scan":{"time":"yesterday"}}`, nil, `field "time"`},
		{"number for a time", `{"scan":{"time":5}}`, nil, `field "time" holds a JSON number`},
		{"not an object", `"x"`, nil, "the document is a JSON string, want an object"},
		{"truncated", `{"scan":{"id":"ab`, nil, "invalid JSON at byte 17: unexpected end of JSON input"},
		{"control character in a string", "{\"scan\":{\"id\":\"a\nb\"}}", nil, `invalid character '\n' in string literal`},
		{"bad escape", `{"scan":{"id":"\x"}}`, nil, "in string escape code"},
		{"trailing comma", `{"schema_version":1,}`, nil, "looking for beginning of object key string"},
		{"leading zero", `{"schema_version":01}`, nil, "after object key:value pair"},
		{"trailing data", `{} {}`, nil, "after top-level value"},
		{"bad literal", `{"containers":[{"stale":tru}]}`, nil, "in literal true"},
		{"too deep", `{"x":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, nil, "exceeded max depth"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeOwn([]byte(tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !tc.want(&got) {
				t.Errorf("decoded %+v", got)
			}
			if want, err := decodeStd([]byte(tc.data)); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("encoding/json decodes it to %+v (error %v)", want, err)
			}
		})
	}
}

// TestDecodeAgreesWithEncodingJSON: documents at the edges of the JSON
// types decode as encoding/json decodes them, accepted or refused alike.
func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	for _, doc := range []string{
		`{"containers":[{"gpu":null,"exit_code":null,"started_at":null,"labels":null}]}`,
		`{"containers":[{"gpu":{"devices":[],"channels":null}}]}`,
		`{"sources":{"docker":null,"nvml":{}}}`,
		`{"containers":[{"cpu_percent":-0.0,"memory_bytes":18446744073709551615}]}`,
		`{"containers":[{"cpu_percent":1E2,"cpu_usage_ns":0}]}`,
		`{"containers":[{"cpu_percent":4.9e-324}]}`,
		`{"containers":[{"cpu_percent":1e-400}]}`,
		`{"containers":[{"memory_bytes":18446744073709551616}]}`,
		`{"scan":{"duration_ms":-9223372036854775808}}`,
		`{"scan":{"duration_ms":9223372036854775808}}`,
		`{"scan":{"duration_ms":1e3}}`,
		`{"schema\u005fversion":1}`,
		`{"containers":[{"gpu_processes":[{"\u212aind":"x","PID":7}]}]}`,
		`{"host_processes":[{"sm_util_percent":4294967295,"gpus":[null,"0"]}]}`,
		`{"scan":{"time":"2026-01-30T14:30:00.123456789+05:30"}}`,
		`{"scan":{"time":"2026-01-30T24:00:00Z"}}`,
		`{"scan":{"time":"2026-01-30t14:30:00z"}}`,
		`{"scan":{"time":"2026-01-30T14:30:00.Z"}}`,
		`{"scan":{"time":"\u0032026-01-30T14:30:00Z"}}`,
		`{"scan":{"time":{}}}`,
		`{"scan":{"id":"\ud83d\ude00\ud83d\u0041\udc00"}}`,
		`{"scan":[]}`,
		`{"gpus":[{"minor_number":-1,"persistence_mode":null,"mig_enabled":true}]}`,
		"\ufeff{}",
		` {"schema_version" : 1 } ` + "\n\t\r",
		`{"schema_version":1}}`,
		`{"a":[1,2,]}`,
		`{"a":.5}`,
		`{"a":-}`,
		`{"a":1.}`,
		`{"a":1e}`,
		`{"a":"\u12"}`,
		`{"a" 1}`,
		`{"a":nul}`,
	} {
		got, err := decodeOwn([]byte(doc))
		want, stdErr := decodeStd([]byte(doc))
		if (err == nil) != (stdErr == nil) {
			t.Errorf("%s: decoder error %v, encoding/json error %v", doc, err, stdErr)
			continue
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decoded %+v, encoding/json %+v", doc, got, want)
		}
	}
}

// TestDecodeBudget: a document of many tiny entries is refused before it
// takes more memory than any inventory would, whichever list it fills.
func TestDecodeBudget(t *testing.T) {
	many := func(prefix, entry, suffix string) string {
		entries := make([]string, 1000)
		for i := range entries {
			entries[i] = strings.ReplaceAll(entry, "N", strconv.Itoa(i))
		}
		return prefix + strings.Join(entries, ",") + suffix
	}
	for _, doc := range []string{
		many(`{"containers":[`, `{}`, `]}`),
		many(`{"host_processes":[{"gpus":[`, `""`, `]}]}`),
		many(`{"containers":[{"labels":{`, `"kN":""`, `}}]}`),
	} {
		var inv Inventory
		err := decodeWithBudget(doc, &inv, 8<<10)
		if err == nil || !strings.Contains(err.Error(), "more entries than an inventory can hold") {
			t.Errorf("%.40s…: error %v, want the budget refused", doc, err)
		}
	}
}

// FuzzDecodeMatchesEncodingJSON: on any input the decoder accepts what
// encoding/json accepts and yields the same inventory, except that it
// refuses a repeated key.
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range fuzzInventorySeeds(f) {
		f.Add(s)
	}
	var full Inventory
	n := 0
	fill(reflect.ValueOf(&full).Elem(), &n)
	data, err := json.Marshal(&full)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeOwn(data)
		if err != nil && strings.Contains(err.Error(), "appears twice") {
			return
		}
		want, stdErr := decodeStd(data)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("decoder error %v, encoding/json error %v", err, stdErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded differently:\ndecoder       %+v\nencoding/json %+v", got, want)
		}
	})
}

// BenchmarkParse is loading a 10,000-workload inventory, against
// encoding/json doing the same decoding.
func BenchmarkParse(b *testing.B) {
	inv := &Inventory{SchemaVersion: SchemaVersion, Sources: map[string]SourceStatus{SourceDocker: {OK: true, LastSuccess: ptr(t0)}}}
	for i := range 9000 {
		c := container(i+1, "running", TypeRawDocker)
		c.Labels = map[string]string{"com.docker.compose.project": "p", "ds01.user": "alice"}
		c.CPUPercent, c.MemoryBytes = ptr(93.5), ptr(uint64(1<<30))
		c.GPUProcesses = []GPUProcess{{PID: 10000 + i, GPU: "0", MemoryBytes: ptr(uint64(1 << 30))}}
		inv.Containers = append(inv.Containers, c)
	}
	for i := range 1000 {
		inv.HostProcesses = append(inv.HostProcesses, process(100000+i, uint64(i)))
	}
	data, err := json.Marshal(inv)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decoder", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := Parse(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := decodeStd(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
