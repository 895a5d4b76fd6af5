package contention

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ChildEnv is set in the environment of the processes runFleet starts: a
// program that finds it set calls ChildMain instead of doing its own work.
const ChildEnv = "DBOP_CONTENTION_CHILD"

// childSpec is what the parent tells a child, as one line of JSON on its
// standard input.
type childSpec struct {
	Config   Config
	Strategy string // a name StrategyByName knows
	Index    int    // the process's number, from 0
	Workers  int    // the process's share of the workers
}

// runFleet runs s in procs processes that share workers and the rows, and
// adds up what they measured. Each process is this executable started
// again with ChildEnv set; it opens its connections, says "ready", and
// starts when the parent says "go", at the same instant as the others.
func runFleet(ctx context.Context, cfg Config, s Strategy, workers, procs int) (partial, error) {
	exe, err := os.Executable()
	if err != nil {
		return partial{}, err
	}
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
	}
	children := make([]child, procs)
	defer func() {
		for _, c := range children {
			if c.cmd != nil && c.cmd.ProcessState == nil {
				c.cmd.Process.Kill()
				c.cmd.Wait()
			}
		}
	}()
	for i := range procs {
		share := workers / procs
		if i < workers%procs {
			share++
		}
		cmd := exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(), ChildEnv+"=1")
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return partial{}, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return partial{}, err
		}
		if err := cmd.Start(); err != nil {
			return partial{}, err
		}
		children[i] = child{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
		spec, err := json.Marshal(childSpec{Config: cfg, Strategy: s.Name, Index: i, Workers: share})
		if err != nil {
			return partial{}, err
		}
		if _, err := fmt.Fprintf(stdin, "%s\n", spec); err != nil {
			return partial{}, err
		}
	}
	for i, c := range children {
		line, err := c.out.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			return partial{}, fmt.Errorf("process %d did not get ready: %q %v", i, line, err)
		}
	}
	start := time.Now().Add(20 * time.Millisecond)
	for _, c := range children {
		if _, err := fmt.Fprintf(c.stdin, "go %d\n", start.UnixNano()); err != nil {
			return partial{}, err
		}
	}
	var total partial
	for i, c := range children {
		var p partial
		if err := json.NewDecoder(c.out).Decode(&p); err != nil {
			return partial{}, fmt.Errorf("process %d: result: %w", i, err)
		}
		if err := c.cmd.Wait(); err != nil {
			return partial{}, fmt.Errorf("process %d: %w", i, err)
		}
		total.add(p)
	}
	return total, nil
}

// ChildMain is the whole of a process runFleet started: it reads its part
// of the run from standard input, runs it, and writes what it measured to
// standard output. It returns the process's exit status.
func ChildMain() int {
	in := bufio.NewReader(os.Stdin)
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "contention child:", err)
		return 2
	}
	line, err := in.ReadString('\n')
	if err != nil {
		return fail(err)
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(line), &spec); err != nil {
		return fail(err)
	}
	s, err := StrategyByName(spec.Strategy, spec.Config)
	if err != nil {
		return fail(err)
	}
	ready := func() (time.Time, error) {
		fmt.Println("ready")
		line, err := in.ReadString('\n')
		if err != nil {
			return time.Time{}, err
		}
		ns, ok := strings.CutPrefix(strings.TrimSpace(line), "go ")
		if !ok {
			return time.Time{}, errors.New("want go <start>, got " + line)
		}
		n, err := strconv.ParseInt(ns, 10, 64)
		return time.Unix(0, n), err
	}
	p, err := runProcess(context.Background(), spec.Config, s, spec.Workers, spec.Index, ready)
	if err != nil {
		return fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(p); err != nil {
		return fail(err)
	}
	return 0
}
