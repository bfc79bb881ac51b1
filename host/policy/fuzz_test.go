package policy_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/sdk"
)

// FuzzCheck feeds arbitrary effects to the policy. What it allows must be
// what Redis accepts: integers and floats in Redis' grammar, BITFIELD
// addresses within the limit. The model below restates those rules
// independently of policy.go.
func FuzzCheck(f *testing.F) {
	f.Add("HINCRBY", "m:h", "f\x001")
	f.Add("HINCRBYFLOAT", "m:h", "f\x0012.50")
	f.Add("BITFIELD", "m:b", "OVERFLOW\x00SAT\x00INCRBY\x00u8\x00#3\x00-2")
	f.Add("BITFIELD", "m:b", "SET\x00i64\x00#16383\x005")
	f.Add("XADD", "m:x", "MAXLEN\x00~\x00100\x00*\x00a\x001")
	f.Add("ZINCRBY", "m:z", "-0.25\x00m")
	f.Add("INCRBY", "m:c", "+7")
	p := policy.New("fuzz", []string{"m:*"}, []string{"eventhost:"})
	f.Fuzz(func(t *testing.T, cmd, key, joined string) {
		args := strings.Split(joined, "\x00")
		e := sdk.Effect{Command: cmd, Key: key, Args: args}
		if p.Check(e) != nil {
			return
		}
		switch cmd {
		case "HINCRBY":
			mustRedisInt(t, args[1])
		case "INCRBY":
			mustRedisInt(t, args[0])
		case "HINCRBYFLOAT":
			mustDecimal(t, args[1])
		case "ZINCRBY":
			mustDecimal(t, args[0])
		case "BITFIELD":
			for i := 0; i < len(args); {
				if strings.EqualFold(args[i], "OVERFLOW") {
					i += 2
					continue
				}
				bits, err := sdk.ParseCounter(args[i+1])
				if err != nil {
					t.Fatalf("allowed type %q", args[i+1])
				}
				off, hash := strings.CutPrefix(args[i+2], "#")
				n := mustRedisInt(t, off)
				if hash {
					n *= bits
				}
				if n < 0 || n+bits > policy.DefaultMaxBitfieldBits {
					t.Fatalf("allowed BITFIELD address %s of %s", args[i+2], args[i+1])
				}
				mustRedisInt(t, args[i+3])
				i += 4
			}
		}
	})
}

func mustRedisInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != s {
		t.Fatalf("allowed %q, which Redis would not read as an integer", s)
	}
	return n
}

func mustDecimal(t *testing.T, s string) {
	t.Helper()
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.Count(digits, ".") > 1 || strings.Trim(digits, "0123456789.") != "" || digits == "." {
		t.Fatalf("allowed %q, which is not a plain decimal", s)
	}
}
