package apply

import (
	"strconv"
	"strings"
)

// slotCount is the number of hash slots of a Redis Cluster.
const slotCount = 16384

// slotOf returns the hash slot Redis Cluster stores key in: CRC16 (XMODEM)
// of the key's hash tag (the part between the first '{' and the next '}',
// when not empty) or of the whole key, modulo 16384.
func slotOf(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if n := strings.IndexByte(key[open+1:], '}'); n > 0 {
			key = key[open+1 : open+1+n]
		}
	}
	return int(crc16(key) % slotCount)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum
// Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slotTags returns, for every hash slot, a short hash tag that Redis Cluster
// stores in that slot: the shortest base-36 number that hashes there. The
// idempotency record of a slot is named after it, so that the record lives,
// and moves in a resharding, with the data it protects.
func slotTags() []string {
	tags := make([]string, slotCount)
	left := slotCount
	for n := int64(0); left > 0; n++ {
		tag := strconv.FormatInt(n, 36)
		if s := crc16(tag) % slotCount; tags[s] == "" {
			tags[s] = tag
			left--
		}
	}
	return tags
}
