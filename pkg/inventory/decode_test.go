package inventory

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ds01-project/ds01/internal/jsondec"
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
		ks *jsondec.Keys
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
		got := tc.ks.Names()
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
		{"too deep", `{"x":` + strings.Repeat("[", jsondec.MaxDepth) + strings.Repeat("]", jsondec.MaxDepth) + `}`, nil, "exceeded max depth"},
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

		// Integers: minus zero, the nine-digit fast path and past it, the
		// range of each type, and the forms only a float may take.
		`{"schema_version":-0}`,
		`{"schema_version":999999999,"scan":{"duration_ms":-999999999}}`,
		`{"schema_version":1000000000,"scan":{"duration_ms":-1000000000}}`,
		`{"schema_version":9223372036854775807}`,
		`{"schema_version":-9223372036854775809}`,
		`{"schema_version":1.0}`,
		`{"schema_version":1E0}`,
		`{"schema_version":1e-0}`,
		`{"schema_version":00}`,
		`{"schema_version":-01}`,
		`{"schema_version":+1}`,
		`{"scan":{"duration_ms":-9223372036854775809}}`,
		`{"containers":[{"cpu_usage_ns":-0}]}`,
		`{"containers":[{"cpu_usage_ns":18446744073709551615,"pid":-9223372036854775808}]}`,
		`{"containers":[{"cpu_usage_ns":1.0}]}`,
		`{"containers":[{"memory_bytes":-0}]}`,
		`{"containers":[{"memory_bytes":0.5}]}`,
		`{"containers":[{"exit_code":-2147483649}]}`,
		`{"containers":[{"exit_code":1e2}]}`,
		`{"host_processes":[{"sm_util_percent":-0}]}`,
		`{"host_processes":[{"sm_util_percent":0,"start_ticks":18446744073709551616}]}`,
		`{"host_processes":[{"sm_util_percent":-1}]}`,
		`{"gpus":[{"last_sample_timestamp":-1}]}`,
		`{"gpus":[{"gpu_instance_id":9223372036854775808}]}`,
		`{"gpus":[{"memory_total_bytes":18446744073709551615,"memory_used_bytes":0,"unknown_processes":-5}]}`,

		// Floats: the range edges, underflow, long mantissas and exponents.
		`{"containers":[{"cpu_percent":1.7976931348623157e308}]}`,
		`{"containers":[{"cpu_percent":1.7976931348623159e308}]}`,
		`{"containers":[{"cpu_percent":-1e400}]}`,
		`{"containers":[{"cpu_percent":0e999999999999999999999}]}`,
		`{"containers":[{"cpu_percent":1e-999999999999999999999}]}`,
		`{"containers":[{"cpu_percent":2.4703282292062328e-324}]}`,
		`{"containers":[{"cpu_percent":0.` + strings.Repeat("0", 400) + `1e400}]}`,
		`{"containers":[{"cpu_percent":` + strings.Repeat("9", 800) + `}]}`,
		`{"containers":[{"cpu_percent":-0,"memory_bytes":0}]}`,
		`{"containers":[{"cpu_percent":1E+2}]}`,
		`{"containers":[{"cpu_percent":1e+}]}`,
		`{"containers":[{"cpu_percent":-.5}]}`,
		`{"containers":[{"cpu_percent":"1"}]}`,
		`{"containers":[{"cpu_percent":NaN}]}`,
		`{"containers":[{"cpu_percent":Infinity}]}`,

		// null for every kind of field: value, pointer, slice, map,
		// struct, time, pointer to time, map value, list element.
		`{"schema_version":null,"scan":null,"sources":null,"containers":null,"host_processes":null,"pending_processes":null,"gpus":null}`,
		`{"scan":{"id":null,"time":null,"duration_ms":null,"host":null,"version":null}}`,
		`{"sources":{"docker":{"ok":null,"error":null,"last_success":null,"warning":null}}}`,
		`{"containers":[{"id":null,"exit_code":null,"created_at":null,"started_at":null,"stale":null,"pid":null,` +
			`"gpu":{"declared":null,"channels":null,"devices":[null]},"gpu_processes":[null,{"pid":null,"memory_bytes":null}],` +
			`"cpu_percent":null,"memory_bytes":null,"cpu_usage_ns":null,"cpu_sampled_at":null,"labels":{"a":null},"detected_labels":null}]}`,
		`{"host_processes":[{"pid":null,"start_ticks":null,"started_at":null,"gpus":null,"gpu_memory_bytes":null,"kinds":[null],"sm_util_percent":null}]}`,
		`{"gpus":[null,{"index":null,"minor_number":null,"gpu_instance_id":null,"mig_enabled":null,"persistence_mode":null,"last_sample_timestamp":null}]}`,
		`{"pending_processes":[null,null]}`,

		// Empty lists and maps stay empty and not nil.
		`{"sources":{},"containers":[],"host_processes":[],"pending_processes":[],"gpus":[]}`,
		`{"containers":[{"gpu":{},"gpu_processes":[],"labels":{},"detected_labels":{}}],"host_processes":[{"gpus":[],"kinds":[]}]}`,
		`{"containers":[{"gpu":{"channels":[],"devices":[]}}]}`,
		`{"containers":[ ],"sources":{ }}`,

		// Values of the wrong JSON type, for each kind of field.
		`{"containers":{}}`,
		`{"containers":"x"}`,
		`{"containers":[1]}`,
		`{"containers":[[]]}`,
		`{"sources":[]}`,
		`{"sources":{"docker":[]}}`,
		`{"sources":{"docker":{"ok":0}}}`,
		`{"sources":{"docker":{"last_success":0}}}`,
		`{"containers":[{"labels":[]}]}`,
		`{"containers":[{"labels":{"a":1}}]}`,
		`{"containers":[{"labels":{"a":{}}}]}`,
		`{"containers":[{"gpu":[]}]}`,
		`{"containers":[{"gpu":{"declared":"true"}}]}`,
		`{"containers":[{"gpu":{"devices":"all"}}]}`,
		`{"containers":[{"gpu":{"devices":[0]}}]}`,
		`{"containers":[{"exit_code":true}]}`,
		`{"containers":[{"exit_code":"1"}]}`,
		`{"containers":[{"started_at":[]}]}`,
		`{"containers":[{"started_at":{}}]}`,
		`{"containers":[{"created_at":true}]}`,
		`{"containers":[{"id":1}]}`,
		`{"containers":[{"id":[]}]}`,
		`{"containers":[{"stale":1}]}`,
		`{"containers":[{"stale":"false"}]}`,
		`{"scan":{"duration_ms":"1"}}`,
		`{"scan":"x"}`,
		`{"scan":1}`,
		`{"gpus":[{"persistence_mode":"true"}]}`,
		`{"host_processes":[{"kinds":"compute"}]}`,

		// Top-level values other than an object.
		`null`, ` null `, `null x`, `nullnull`, `nul`, `[]`, `[{}]`, `1`, `-1`, `true`, `false`, `"x"`, `""`, ``, ` `, "\n",

		// Strings: escapes, surrogates, invalid and edge UTF-8.
		`{"scan":{"id":"\ud83d"}}`,
		`{"scan":{"id":"\ud83dx"}}`,
		`{"scan":{"id":"\ud83d\""}}`,
		`{"scan":{"id":"\udc00\ud800"}}`,
		`{"scan":{"id":"\ud800\ud800\udc00"}}`,
		`{"scan":{"id":"\ud800\\udc00"}}`,
		`{"scan":{"id":"\uDBFF\uDFFF\uD800\uDC00"}}`,
		`{"scan":{"id":"\u0000\u001F\u007f\u0080\u009b\u00ff\u2028\u202e\uFFFD\uFFFE\uffff"}}`,
		`{"scan":{"id":"\b\f\n\r\t\/\\\""}}`,
		`{"scan":{"id":"\'"}}`,
		`{"scan":{"id":"\U0041"}}`,
		`{"scan":{"id":"\u00g1"}}`,
		`{"scan":{"id":"\u`,
		`{"scan":{"id":"\u00`,
		`{"scan":{"id":"\`,
		`{"scan":{"id":"\ud83d\`,
		`{"scan":{"id":"\ud83d\u`,
		`{"scan":{"id":"\ud83d\ude0`,
		"{\"scan\":{\"id\":\"\xed\xa0\x80\xed\xb0\x80\"}}",
		"{\"scan\":{\"id\":\"\xf4\x90\x80\x80\xf0\x9f\x98\x80\"}}",
		"{\"scan\":{\"id\":\"\xc0\xaf\xe0\x80\xaf\xc1\xbf\"}}",
		"{\"scan\":{\"id\":\"\xe2\x82x\xe2\x82\"}}",
		"{\"scan\":{\"id\":\"\xef\xbf\xbd\xef\xbf\xbe\"}}",
		"{\"scan\":{\"id\":\"\x7f\x80\xbf\xc2\x80\"}}",
		"{\"scan\":{\"id\":\"\xc2\x9b31m\xe2\x80\xae\"}}",
		"{\"scan\":{\"id\":\"a\x00b\"}}",
		"{\"scan\":{\"id\":\"\x1f\"}}",
		"{\"scan\":{\"id\":\"\xff",
		`{"scan":{"id":"` + strings.Repeat(`\u00e9\ud83d\ude00x`, 4096) + `"}}`,
		`{"scan":{"id":"` + strings.Repeat("\xff", 4096) + `"}}`,
		`{"scan":{"id":"` + strings.Repeat("abcdefg", 4096) + `\n"}}`,
		`{"scan":{"id":"1234567\"","host":"12345678\\","version":"123456789\u0041"}}`,

		// Keys: escaped, folded as encoding/json folds them (U+017F LONG S
		// and U+212A KELVIN SIGN fold to s and k; U+0131 and U+0130, whose
		// upper or lower case is ASCII, do not fold), invalid UTF-8, and
		// map keys, which are matched exactly.
		`{"\u0073chema_version":1}`,
		`{"scan":{"\u0069d":"x","\u0049\u0044x":"y"}}`,
		"{\"\u017fchema_version\":1,\"\u017fCAN\":{\"\u017fD\":\"x\"}}",
		"{\"\u017fchema_ver\u017fion\":1}",
		"{\"host_processes\":[{\"\u212ainds\":[\"compute\"],\"\u212a\":1}]}",
		"{\"scan\":{\"\u0131d\":\"x\"}}",
		"{\"scan\":{\"\u0130D\":\"x\"}}",
		"{\"schema_version\xff\":1}",
		"{\"\xffschema_version\":1}",
		`{"SCHEMA_VERSION":1,"Scan":{"Time":"2026-01-30T14:30:00Z","DURATION_MS":5}}`,
		`{"schemaversion":1,"schema-version":1,"schema_version ":1}`,
		`{"containers":[{"labels":{"A":"1","a":"2","\u0061b":"3","\ud800":"4"}}]}`,
		"{\"containers\":[{\"labels\":{\"\xff\":\"\xfe\",\"\x7f\":\"\xc2\x9b\",\"\xef\xbf\xbd\xef\xbf\xbe\":\"\"}}]}",
		`{"sources":{"Docker":{},"docker":{"OK":true,"Last_Success":"2026-01-30T14:30:00Z"}}}`,
		`{"":1,"\u0000":2}`,

		// White space: only the four JSON allows, anywhere between tokens.
		"\t\n\r {\t\"schema_version\"\n:\r1\t,\"containers\" : [ { } , null ] }\n",
		"{\"schema_version\":1}\x00",
		"\x0b{}",
		"{}\x0c",
		"{\"schema_version\":1\u00a0}",
		"\u00a0{}",
		"{\"schema_version\":1\u2028}",

		// Trailing data after the one value.
		`{}}`, `{}]`, `{},`, `{}null`, `{} x`, `{}{}`,

		// Nesting up to and past encoding/json's depth limit, in a value
		// that is skipped and in one of the wrong type.
		`{"x":` + strings.Repeat("[", jsondec.MaxDepth-1) + strings.Repeat("]", jsondec.MaxDepth-1) + `}`,
		`{"x":` + strings.Repeat(`{"a":`, jsondec.MaxDepth-1) + "1" + strings.Repeat("}", jsondec.MaxDepth-1) + `}`,
		`{"x":` + strings.Repeat(`{"a":`, jsondec.MaxDepth) + "1" + strings.Repeat("}", jsondec.MaxDepth) + `}`,
		`{"scan":{"id":` + strings.Repeat("[", jsondec.MaxDepth-2) + strings.Repeat("]", jsondec.MaxDepth-2) + `}}`,
		`{"scan":{"id":` + strings.Repeat("[", jsondec.MaxDepth) + strings.Repeat("]", jsondec.MaxDepth) + `}}`,
		`{"containers":[{"gpu":{"x":` + strings.Repeat("[", jsondec.MaxDepth-4) + strings.Repeat("]", jsondec.MaxDepth-4) + `}}]}`,
		`{"x":` + strings.Repeat("[", jsondec.MaxDepth),

		// Times: the edges time.Time.UnmarshalJSON draws, in a value and in
		// a pointer.
		`{"scan":{"time":"0000-01-01T00:00:00Z"}}`,
		`{"scan":{"time":"9999-12-31T23:59:59.999999999-23:59"}}`,
		`{"scan":{"time":"2026-01-30T14:30:00+24:00"}}`,
		`{"scan":{"time":"2026-01-30T14:30:00+23:60"}}`,
		`{"scan":{"time":"2024-02-29T00:00:00Z"}}`,
		`{"scan":{"time":"2026-02-29T00:00:00Z"}}`,
		`{"scan":{"time":"2026-01-30T14:30:60Z"}}`,
		`{"scan":{"time":"2026-01-30T14:30:00.1234567891Z"}}`,
		`{"scan":{"time":"2026-01-30T14:30:00,5Z"}}`,
		`{"scan":{"time":"2026-01-30 14:30:00Z"}}`,
		`{"scan":{"time":"2026-01-30T14:30:00"}}`,
		`{"scan":{"time":"2026-1-30T14:30:00Z"}}`,
		`{"scan":{"time":"+2026-01-30T14:30:00Z"}}`,
		`{"scan":{"time":"2026-01-30T14:30:00+0530"}}`,
		`{"scan":{"time":""}}`,
		`{"scan":{"time":"null"}}`,
		`{"scan":{"time":" 2026-01-30T14:30:00Z"}}`,
		`{"scan":{"time":"2026-01-30T14:30:00Z\u0000"}}`,
		"{\"scan\":{\"time\":\"2026-01-30T14:30:00Z\xff\"}}",
		`{"containers":[{"started_at":"2026-01-30T14:30:00-00:00","cpu_sampled_at":"2026-01-30T14:30:00.5+00:00"}]}`,
		`{"containers":[{"started_at":"2026-13-30T14:30:00Z"}]}`,
		`{"sources":{"nvml":{"last_success":"0001-01-01T00:00:00Z"}}}`,
		`{"sources":{"nvml":{"last_success":"yesterday"}}}`,
		`{"host_processes":[{"started_at":"2026-01-30T14:30:00.000000000Z","detected_at":"2026-01-30T14:30:00.Z"}]}`,

		// Lists long enough that their length is estimated, some of them
		// with null elements, and one inside another list.
		`{"containers":[` + strings.Repeat(`{"pid":1},null,`, 40) + `{}],"host_processes":[` + strings.Repeat(`{},`, 16) + `{}]}`,
		`{"pending_processes":[` + strings.Repeat(`{"gpus":[`+strings.Repeat(`"0",null,`, 20)+`"1"]},`, 17) + `null]}`,
		`{"gpus":[` + strings.Repeat(`{}, `, 16) + `{"index":` + strings.Repeat("1", 30) + `}]}`,
		`{"containers":[` + strings.Repeat(`{}`+strings.Repeat(" ", 1000)+`,`, 16) + `{}],"x":"` + strings.Repeat("x", 1<<16) + `"}`,
	} {
		got, err := decodeOwn([]byte(doc))
		want, stdErr := decodeStd([]byte(doc))
		if (err == nil) != (stdErr == nil) {
			t.Errorf("%.200q: decoder error %v, encoding/json error %v", doc, err, stdErr)
			continue
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%.200q: decoded %+v, encoding/json %+v", doc, got, want)
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

// TestDecodeBudgetCapsReservedRoom: the room set aside for the estimated
// length of the inventory's lists stays within the budget for all of them
// together, even when each list starts with tiny entries and the rest of
// the document is filler that makes every one of them look long. Room for
// twice the entries decoded, which appending alone may leave, comes on top.
func TestDecodeBudgetCapsReservedRoom(t *testing.T) {
	const budget = 1 << 20
	n := 2*jsondec.EstimateAfter + 1
	list := "[" + strings.Repeat("{},", n-1) + "{}]"
	doc := `{"containers":` + list + `,"host_processes":` + list + `,"pending_processes":` + list +
		`,"gpus":` + list + `,"x":"` + strings.Repeat("x", 8*budget) + `"}`
	var inv Inventory
	if err := decodeWithBudget(doc, &inv, budget); err != nil {
		t.Fatal(err)
	}
	if len(inv.Containers) != n || len(inv.HostProcesses) != n || len(inv.PendingProcesses) != n || len(inv.GPUs) != n {
		t.Fatalf("decoded %d, %d, %d and %d entries, want %d of each", len(inv.Containers),
			len(inv.HostProcesses), len(inv.PendingProcesses), len(inv.GPUs), n)
	}
	room, entries := 0, 0
	for _, l := range []struct {
		len, cap int
		size     uintptr
	}{
		{len(inv.Containers), cap(inv.Containers), reflect.TypeFor[Container]().Size()},
		{len(inv.HostProcesses), cap(inv.HostProcesses), reflect.TypeFor[HostProcess]().Size()},
		{len(inv.PendingProcesses), cap(inv.PendingProcesses), reflect.TypeFor[HostProcess]().Size()},
		{len(inv.GPUs), cap(inv.GPUs), reflect.TypeFor[GPUDevice]().Size()},
	} {
		room += l.cap * int(l.size)
		entries += l.len * int(l.size)
	}
	if room-2*entries > budget {
		t.Errorf("lists hold room for %d bytes, %d entries' worth; the budget is %d", room, entries, budget)
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

// benchInventory has 10,000 workloads: 9,000 containers, 1,000 processes.
func benchInventory() *Inventory {
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
	return inv
}

// BenchmarkParse is loading a 10,000-workload inventory, against
// encoding/json doing the same decoding; "encode" is what Save spends
// encoding it.
func BenchmarkParse(b *testing.B) {
	inv := benchInventory()
	data, err := json.Marshal(inv)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := encodeTo(io.Discard, inv); err != nil {
				b.Fatal(err)
			}
		}
	})
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
