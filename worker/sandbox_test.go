package worker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckUIDRangeRefusesHostAccounts(t *testing.T) {
	t.Parallel()
	passwd := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(passwd, []byte("root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000::/home/dev:/bin/sh\n\nbroken line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := checkUIDRange(passwd, 1000, 1000)
	if err == nil || !strings.Contains(err.Error(), `uid 1000, the account "dev"`) {
		t.Errorf("a range holding dev's uid: %v", err)
	}
	if err := checkUIDRange(passwd, 1001, 1000); err != nil {
		t.Errorf("a range past every account: %v", err)
	}
	if err := checkUIDRange(passwd, 0, 0); err != nil {
		t.Errorf("the default range: %v", err)
	}
	if err := checkUIDRange(filepath.Join(t.TempDir(), "none"), 1000, 1000); err != nil {
		t.Errorf("no passwd: %v", err)
	}
}
