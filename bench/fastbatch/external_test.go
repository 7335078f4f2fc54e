//go:build fastbatchprobe

package fastbatchprobe

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServeHelper is the server process of the "external" transport: run
// by startExternal (FASTBATCH_SERVE set), it starts a server, prints its
// URL and serves until its stdin closes. Run directly it does nothing.
func TestServeHelper(t *testing.T) {
	if os.Getenv("FASTBATCH_SERVE") == "" {
		t.Skip("only run as the external server of TestCost")
	}
	s := startServer(t)
	os.Stdout.WriteString("URL " + s.ClientURL() + "\n")
	buf := make([]byte, 1)
	for {
		if _, err := os.Stdin.Read(buf); err != nil {
			return
		}
	}
}

// external is a server in a child process, so the test process's rusage
// counts the client alone; cpu reads the child's.
type external struct {
	url string
	pid int
}

func startExternal(t testing.TB) *external {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FASTBATCH_SERVE=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if url, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
			go func() {
				for sc.Scan() {
				}
			}()
			return &external{url: url, pid: cmd.Process.Pid}
		}
	}
	t.Fatal("external server printed no URL")
	return nil
}

// cpu is the child's user+sys CPU time so far (clock ticks of 10 ms).
func (e *external) cpu(t testing.TB) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(e.pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14 of stat
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(ut+st) * 10 * time.Millisecond
}
