package sdk

import (
	"fmt"
	"strconv"
)

// ParseCounter checks a BITFIELD counter type such as u8 or i32 and returns
// its width in bits: "u1".."u63" unsigned (Redis has no u64: it would not fit
// its signed replies) and "i1".."i64" signed. The host, its report and
// plugins all read counter types with this one function.
func ParseCounter(typ string) (int64, error) {
	if len(typ) < 2 || (typ[0] != 'u' && typ[0] != 'i') || typ[1] < '1' || typ[1] > '9' {
		return 0, fmt.Errorf("counter %q is not a BITFIELD type such as u8, u32 or i64", typ)
	}
	bits, err := strconv.ParseInt(typ[1:], 10, 64)
	max := int64(64)
	if typ[0] == 'u' {
		max = 63
	}
	if err != nil || bits < 1 || bits > max {
		return 0, fmt.Errorf("counter %q is not a BITFIELD type: %c takes 1 to %d bits", typ, typ[0], max)
	}
	return bits, nil
}
