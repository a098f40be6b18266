package main

import (
	"encoding/binary"
	"fmt"
	"strings"
	"syscall"
)

// setXattr sets the extended attribute name of path to value.
func setXattr(path, name, value string) {
	if err := syscall.Setxattr(path, name, []byte(value), 0); err != nil {
		fail(fmt.Sprintf("setxattr %s %s: %v", path, name, err))
	}
}

// listXattrs prints the extended attributes of path, one per line.
func listXattrs(path string) {
	buf := make([]byte, 64<<10)
	n, err := syscall.Listxattr(path, buf)
	if err != nil {
		fail(fmt.Sprintf("listxattr %s: %v", path, err))
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name != "" {
			fmt.Println(name)
		}
	}
}

// denyByDefault gives the directory path a default POSIX ACL that grants
// nothing to anyone: what is created under it inherits mode 0000.
func denyByDefault(path string) {
	const version, userObj, groupObj, other = 2, 0x01, 0x04, 0x20
	b := binary.LittleEndian.AppendUint32(nil, version)
	for _, tag := range []uint16{userObj, groupObj, other} {
		b = binary.LittleEndian.AppendUint16(b, tag)
		b = binary.LittleEndian.AppendUint16(b, 0)          // no permission
		b = binary.LittleEndian.AppendUint32(b, 0xffffffff) // no id
	}
	if err := syscall.Setxattr(path, "system.posix_acl_default", b, 0); err != nil {
		fail(fmt.Sprintf("set a default ACL on %s: %v", path, err))
	}
}
