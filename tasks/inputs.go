package tasks

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// InlineInputBytes is the most input content, stdin and file contents
// together, that a task's payload carries inline. Submit stores the largest
// inputs of a request beside its task (see StoredInput) until those left
// inline total at most this; a request whose inputs are within it travels
// as it always has, every byte in the payload.
const InlineInputBytes = 64 << 10

// MaxStoredInputBytes is the largest input a reference may stand for: the
// largest value Redis holds by default (proto-max-bulk-len).
const MaxStoredInputBytes = 512 << 20

// StoredInput stands in a task's payload for an input stored beside the
// task. In JSON it is an object, {"storedBytes": N, "sha256": "…"}, where
// the base64 string of stdin or of a file's content would be; a decoder
// that does not know it fails on the object instead of reading an empty
// input, so a worker that predates it rejects such a request rather than
// running it without its input.
//
// The bytes are in the hash Keys.Input(ID): stdin under StdinField,
// files[i]'s content under FileField(i). The producer writes them before it
// enqueues the task, so a worker never sees a reference to an input not yet
// written, and they expire with the execution's other keys (the retention
// period) or when the execution gets its result. A worker that finds
// references in a request must:
//
//   - check the request against its limits with the sizes the references
//     give, before it reads anything (Validate does);
//   - read the fields from Keys.Input of the task's own ID, under its own
//     key prefix, never from a key a payload could name;
//   - check each value's length and SHA-256 against its reference and put
//     the bytes in their place (RestoreInputs);
//   - when an input is missing (expired, deleted) or does not match, store
//     a final "error" result that names it (InputError) and run nothing:
//     never run the command with an empty input in place of a missing one.
type StoredInput struct {
	// Bytes is the input's length.
	Bytes int64 `json:"storedBytes"`
	// SHA256 is the lowercase hex SHA-256 of the input's bytes.
	SHA256 string `json:"sha256"`
}

// StdinField is the field of Keys.Input that holds a stored stdin.
const StdinField = "stdin"

// FileField is the field of Keys.Input that holds the content of files[i].
func FileField(i int) string { return "files/" + strconv.Itoa(i) }

func storedInputOf(b []byte) *StoredInput {
	sum := sha256.Sum256(b)
	return &StoredInput{Bytes: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
}

// StoreBeside returns r with its largest inputs replaced by references,
// until the inputs left inline total at most InlineInputBytes, and the
// contents to store under Keys.Input(r.ID), by field. A request whose
// inputs total at most InlineInputBytes comes back as it is, with nothing
// to store. r itself is not changed.
func (r ExecRequest) StoreBeside() (ExecRequest, map[string][]byte) {
	type input struct {
		field string
		size  int
		file  int // -1 for stdin
	}
	var inputs []input
	inline := 0
	if len(r.Stdin) > 0 && r.StdinStored == nil {
		inputs = append(inputs, input{StdinField, len(r.Stdin), -1})
		inline += len(r.Stdin)
	}
	for i, f := range r.Files {
		if len(f.Content) > 0 && f.Stored == nil {
			inputs = append(inputs, input{FileField(i), len(f.Content), i})
			inline += len(f.Content)
		}
	}
	if inline <= InlineInputBytes {
		return r, nil
	}
	slices.SortStableFunc(inputs, func(a, b input) int { return cmp.Compare(b.size, a.size) })
	r.Files = slices.Clone(r.Files)
	stored := make(map[string][]byte)
	for _, in := range inputs {
		if inline <= InlineInputBytes {
			break
		}
		inline -= in.size
		if in.file < 0 {
			stored[in.field], r.StdinStored, r.Stdin = r.Stdin, storedInputOf(r.Stdin), nil
			continue
		}
		f := &r.Files[in.file]
		stored[in.field], f.Stored, f.Content = f.Content, storedInputOf(f.Content), nil
	}
	return r, stored
}

// StoredRef is one input of a request that is stored beside its task.
type StoredRef struct {
	// Field is its field in Keys.Input.
	Field string
	// Name says which input it is: "stdin", or "files[2] (data/big.bin)".
	Name string
	StoredInput
}

// StoredInputs lists the inputs of r stored beside its task, stdin first,
// then the files in their order.
func (r *ExecRequest) StoredInputs() []StoredRef {
	var refs []StoredRef
	if r.StdinStored != nil {
		refs = append(refs, StoredRef{Field: StdinField, Name: "stdin", StoredInput: *r.StdinStored})
	}
	for i, f := range r.Files {
		if f.Stored != nil {
			refs = append(refs, StoredRef{Field: FileField(i), Name: fmt.Sprintf("files[%d] (%s)", i, f.Path), StoredInput: *f.Stored})
		}
	}
	return refs
}

func (r *ExecRequest) hasStoredInputs() bool {
	if r.StdinStored != nil {
		return true
	}
	for _, f := range r.Files {
		if f.Stored != nil {
			return true
		}
	}
	return false
}

// storedEncodedBytes is what r's stored inputs would add to its payload
// inline, as base64.
func (r *ExecRequest) storedEncodedBytes() int64 {
	var n int64
	for _, ref := range r.StoredInputs() {
		n += int64(base64.StdEncoding.EncodedLen(int(min(max(ref.Bytes, 0), MaxStoredInputBytes))))
	}
	return n
}

// RestoreInputs puts the contents read from Keys.Input (by field; a field
// absent from the map is absent from Redis) in place of r's references,
// after checking each one's length and SHA-256 against its reference. When
// an input is missing or does not match, it returns an *InputError and
// leaves r as it was.
func (r *ExecRequest) RestoreInputs(contents map[string][]byte) error {
	var bad InputError
	for _, ref := range r.StoredInputs() {
		b, ok := contents[ref.Field]
		switch {
		case !ok:
			bad.Missing = append(bad.Missing, ref)
		case int64(len(b)) != ref.Bytes || storedInputOf(b).SHA256 != ref.SHA256:
			bad.Mismatched = append(bad.Mismatched, ref)
		}
	}
	if len(bad.Missing) > 0 || len(bad.Mismatched) > 0 {
		return &bad
	}
	if r.StdinStored != nil {
		r.Stdin, r.StdinStored = contents[StdinField], nil
	}
	r.Files = slices.Clone(r.Files)
	for i := range r.Files {
		if f := &r.Files[i]; f.Stored != nil {
			f.Content, f.Stored = contents[FileField(i)], nil
		}
	}
	return nil
}

// InputError says which inputs stored beside a task are missing (expired
// or deleted) or do not match their references. A worker ends the
// execution with it, as an "error" result, and runs nothing.
type InputError struct {
	Missing    []StoredRef
	Mismatched []StoredRef
}

func (e *InputError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, fmt.Sprintf(
			"the %s stored beside the task %s missing from Redis: expired (the retention period passed before the execution started) or deleted; nothing ran, submit it again under a new ID",
			listRefs(e.Missing), isOrAre(len(e.Missing))))
	}
	if len(e.Mismatched) > 0 {
		parts = append(parts, fmt.Sprintf(
			"the %s stored beside the task %s not what the request's reference says (another size or SHA-256); nothing ran",
			listRefs(e.Mismatched), isOrAre(len(e.Mismatched))))
	}
	return strings.Join(parts, "; ")
}

func listRefs(refs []StoredRef) string {
	names := make([]string, len(refs))
	for i, ref := range refs {
		names[i] = ref.Name + " (" + strconv.FormatInt(ref.Bytes, 10) + " bytes)"
	}
	if len(names) == 1 {
		return "input " + names[0]
	}
	return "inputs " + strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

func isOrAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func checkStored(p *problems, name string, inline []byte, s *StoredInput) {
	if len(inline) > 0 {
		p.addf("%s is given both inline and stored beside the task", name)
	}
	if s.Bytes < 0 || s.Bytes > MaxStoredInputBytes {
		p.addf("%s is stored beside the task with %d bytes; a stored input holds 0 to %d", name, s.Bytes, MaxStoredInputBytes)
	}
	if len(s.SHA256) != sha256.Size*2 || strings.Trim(s.SHA256, "0123456789abcdef") != "" {
		p.addf("%s is stored beside the task with the SHA-256 %q, which is not 64 lowercase hex digits", name, s.SHA256)
	}
}
