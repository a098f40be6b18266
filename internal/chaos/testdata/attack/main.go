// Command attack is the chaos suite's tenant-side tool: a static program a
// test puts into a sandbox to leave behind what a shell cannot make with
// busybox alone.
//
//	attack ipc                  creates a System V shared memory segment, message queue and semaphore set
//	attack inotify N            opens up to N inotify instances and holds them until killed
//	attack deep N DIR           makes a chain of N nested directories under DIR, deeper than PATH_MAX
//	attack files N DIR          creates N empty files in DIR
//	attack lsipc                prints the System V IPC objects it can see, one per line
//	attack detach CMD ARG...    runs attack CMD ARG... in a session of its own, left behind
//	attack hijack SECONDS       for SECONDS, ptraces every execq-agent helper it sees into reporting a clean reset
//	attack tracehelper AGENT    starts AGENT idle as this user and tries to ptrace it
//	attack setxattr PATH N V    sets the extended attribute N of PATH to V
//	attack lsxattr PATH         prints PATH's extended attributes, one per line
//	attack denyacl DIR          gives DIR a default ACL that grants nothing
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: attack ipc|inotify N|deep N DIR|files N DIR|lsipc|detach CMD...|hijack SECONDS|tracehelper AGENT|setxattr PATH N V|lsxattr PATH|denyacl DIR")
	}
	switch os.Args[1] {
	case "ipc":
		ipc()
	case "inotify":
		inotify(atoi(arg(2)))
	case "deep":
		deep(atoi(arg(2)), arg(3))
	case "files":
		files(atoi(arg(2)), arg(3))
	case "lsipc":
		lsipc()
	case "detach":
		detach(os.Args[2:])
	case "hijack":
		hijack(time.Duration(atoi(arg(2))) * time.Second)
	case "tracehelper":
		traceHelper(arg(2))
	case "setxattr":
		setXattr(arg(2), arg(3), arg(4))
	case "lsxattr":
		listXattrs(arg(2))
	case "denyacl":
		denyByDefault(arg(2))
	default:
		fail("unknown command " + os.Args[1])
	}
}

func arg(i int) string {
	if len(os.Args) <= i {
		fail("missing argument")
	}
	return os.Args[i]
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail(err.Error())
	}
	return n
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "attack:", msg)
	os.Exit(2)
}

const ipcPrivate, ipcCreat = 0, 0o1000

func ipc() {
	shm, _, e1 := syscall.Syscall(syscall.SYS_SHMGET, ipcPrivate, 1<<20, ipcCreat|0o666)
	msg, _, e2 := syscall.Syscall(syscall.SYS_MSGGET, ipcPrivate, ipcCreat|0o666, 0)
	sem, _, e3 := syscall.Syscall(syscall.SYS_SEMGET, ipcPrivate, 4, ipcCreat|0o666)
	for _, e := range []syscall.Errno{e1, e2, e3} {
		if e != 0 {
			fail("ipc: " + e.Error())
		}
	}
	fmt.Printf("shm %d msg %d sem %d\n", shm, msg, sem)
}

func lsipc() {
	for _, kind := range []string{"shm", "msg", "sem"} {
		b, err := os.ReadFile("/proc/sysvipc/" + kind)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		for _, l := range lines[1:] {
			fmt.Println(kind, strings.Join(strings.Fields(l)[:2], " "))
		}
	}
}

func inotify(n int) {
	// The runtime's poller needs a descriptor too, before they run out.
	time.Sleep(time.Millisecond)
	got := 0
	for range n {
		if _, err := syscall.InotifyInit1(0); err != nil {
			break
		}
		got++
	}
	fmt.Printf("inotify %d\n", got)
	os.Stdout.Sync()
	time.Sleep(time.Hour)
}

func deep(n int, dir string) {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		fail(err.Error())
	}
	for i := range n {
		if err := syscall.Mkdirat(fd, "d", 0o755); err != nil {
			fail(fmt.Sprintf("mkdir at depth %d: %v", i, err))
		}
		next, err := syscall.Openat(fd, "d", syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			fail(fmt.Sprintf("open at depth %d: %v", i, err))
		}
		syscall.Close(fd)
		fd = next
	}
	leaf, err := syscall.Openat(fd, "secret", syscall.O_CREAT|syscall.O_WRONLY, 0o644)
	if err != nil {
		fail(err.Error())
	}
	syscall.Write(leaf, []byte("secret\n"))
	fmt.Printf("deep %d (path length %d)\n", n, len(dir)+2*n)
}

func files(n int, dir string) {
	made := 0
	for i := range n {
		fd, err := syscall.Open(fmt.Sprintf("%s/f%d", dir, i), syscall.O_CREAT|syscall.O_WRONLY, 0o644)
		if err != nil {
			break
		}
		syscall.Close(fd)
		made++
	}
	fmt.Printf("files %d\n", made)
}
