package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// ResultVersion is the version of the result message this build writes
// and the only one it reads. It changes when a field changes meaning or
// goes away; a field added keeps it (a reader ignores fields it does not
// know).
const ResultVersion = 1

// ResultFDEnv names the environment variable through which the agent tells
// a job's command which file descriptor takes its result message. The
// agent sets it for the job's command only; without it a command reports
// nothing.
const ResultFDEnv = "PGGUARD_RESULT_FD"

// Result is what a job's command hands the agent that runs it: the figures
// of the run's record. It travels as one JSON document on its own file
// descriptor, never mixed with the output a person reads.
type Result struct {
	Version int `json:"version"`
	// Kind is what the command did: the job's kind, except that an
	// incremental job in a repository without a backup reports full.
	Kind Kind `json:"kind"`
	// BackupID is the backup the command made (a backup), copied last (a
	// copy) or restored from (a restore or a drill).
	BackupID string `json:"backup_id,omitempty"`
	// BytesRead is the volume the command moved: read by a backup (for a
	// logical backup, the dump's size) or a copy, written by a restore,
	// restored by a drill.
	BytesRead int64 `json:"bytes_read"`
	// BytesStored is what the command newly stored in a repository.
	BytesStored int64 `json:"bytes_stored"`
}

// ErrNoResult is ReadResult's error when the command wrote no message at
// all (it ended before it had a result, or it is a release without one).
var ErrNoResult = errors.New("the job's command wrote no result")

// maxResult bounds what ReadResult reads: a message is a few hundred bytes.
const maxResult = 1 << 20

// WriteResult writes r as one JSON document of version ResultVersion
// (whatever r.Version says).
func WriteResult(w io.Writer, r Result) error {
	r.Version = ResultVersion
	return json.NewEncoder(w).Encode(r)
}

// ReadResult reads one result message. It returns as soon as the document
// is complete, without waiting for the end of r: a process the command
// started may still hold the writing end. A message of another version is
// refused, an empty r is ErrNoResult.
func ReadResult(r io.Reader) (Result, error) {
	var res Result
	err := json.NewDecoder(io.LimitReader(r, maxResult)).Decode(&res)
	switch {
	case errors.Is(err, io.EOF):
		return Result{}, ErrNoResult
	case err != nil:
		return Result{}, fmt.Errorf("malformed job result message: %w", err)
	case res.Version == 0:
		return Result{}, errors.New("job result message without a version: not a message of a pgguard job command")
	case res.Version != ResultVersion:
		return Result{}, fmt.Errorf("job result message of version %d, this agent reads version %d: the pgguard binary on disk is another release than the running agent; restart the agent", res.Version, ResultVersion)
	}
	return res, nil
}

// Report ends a job-capable command: when the agent runs the command as a
// job (ResultFDEnv set), it writes r to that descriptor and closes it;
// otherwise it does nothing. It returns err, the command's own outcome,
// joined with a failure to hand r over.
func Report(r Result, err error) error {
	return errors.Join(err, reportTo(os.Getenv(ResultFDEnv), r))
}

// reportTo writes r to the file descriptor named fd ("" for none).
func reportTo(fd string, r Result) error {
	if fd == "" {
		return nil
	}
	n, err := strconv.Atoi(fd)
	if err != nil || n < 3 {
		return fmt.Errorf("%s=%q: not the file descriptor of a job result (the agent sets it for a job's command; unset it to run the command by hand)", ResultFDEnv, fd)
	}
	f := os.NewFile(uintptr(n), "job result")
	werr := WriteResult(f, r)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("hand the job result to the agent (%s=%d): %w", ResultFDEnv, n, werr)
	}
	return nil
}
