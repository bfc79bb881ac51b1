package report

import (
	"fmt"

	"github.com/eventhost/eventhost/sdk"
)

// counterType reads a BITFIELD integer type with sdk.ParseCounter, the one
// parser of counter types.
func counterType(typ string) (bits int, signed bool, err error) {
	n, err := sdk.ParseCounter(typ)
	if err != nil {
		return 0, false, fmt.Errorf("parse counter type: %w", err)
	}
	return int(n), typ[0] == 'i', nil
}

// DecodeCounter returns counter number slot of type typ in buf, a string
// written by BITFIELD: the counter occupies bits slot*bits .. slot*bits+bits-1,
// where bit 0 is the most significant bit of buf[0], and signed counters are
// two's complement. Bits beyond the end of buf read as zero, as Redis treats
// them, so a short or empty buf is not an error.
func DecodeCounter(buf []byte, typ string, slot int) (int64, error) {
	bits, signed, err := counterType(typ)
	if err != nil {
		return 0, err
	}
	if slot < 0 {
		return 0, fmt.Errorf("decode %s counter: negative slot %d", typ, slot)
	}
	return decode(buf, bits, signed, slot*bits), nil
}

func decode(buf []byte, bits int, signed bool, offset int) int64 {
	var v uint64
	for i := range bits {
		pos := offset + i
		var bit uint64
		if pos/8 < len(buf) {
			bit = uint64(buf[pos/8]>>(7-pos%8)) & 1
		}
		v = v<<1 | bit
	}
	if signed && bits < 64 && v>>(bits-1) == 1 {
		v |= ^uint64(0) << bits
	}
	return int64(v)
}
