# /etc/eventhost/config.hcl: eventhost as `make install` lays it out and the
# systemd unit runs it. `eventhost validate -config /etc/eventhost/config.hcl`
# checks it, including every plugin's own config block. Secrets and
# per-machine settings come from /etc/eventhost/eventhost.env through env().
# docs/configuration.md describes every setting; the repository's config.hcl explains the
# plugin settings.

redis {
  address  = env("EVENTHOST_REDIS_ADDRESS", "127.0.0.1:6379")
  username = env("EVENTHOST_REDIS_USERNAME")
  password = env("EVENTHOST_REDIS_PASSWORD")
  db       = 0
}

# Pub/Sub, as the tutorial's producer publishes. Orders published while no host
# is subscribed are found again by catch-up on start and after each reconnect.
source "pubsub" {
  channels = ["purchase_orders"]
}

# Or a Redis Stream with a consumer group (`eventhost publish -stream` writes
# it): several hosts share the work, each order counted once.
# source "stream" {
#   stream         = "purchase_orders"
#   group          = "eventhost"
#   claim_idle     = "30s" # take over a dead host's pending entries after this long
#   max_deliveries = 5     # then dead-letter an entry that keeps failing
# }

order_key_prefix = "purchase_order_details:"

# `make install` puts the bundled plugins here (PREFIX/lib/eventhost/plugins).
# A new plugin is a binary eventhost-plugin-<name> here (mode 0755, not group-
# or world-writable) plus a plugin "<name>" {} block below.
plugin_dir = "/usr/local/lib/eventhost/plugins"

batch {
  max_orders = 512
  max_wait   = "0s"
}

dead_letter {
  stream = "eventhost:deadletter"
  max_len = 100000 # about this many entries are kept (0: all)
}

# Bounds every order must keep; one outside them is dead-lettered with a
# reason naming the limit, before any plugin sees it. These are the defaults.
# limits {
#   max_id_bytes    = 256
#   max_order_bytes = 65536      # field names + values of one hash
#   max_field_bytes = 4096       # each name and each value
#   max_qty         = 1000000
#   max_cost        = 1000000000
#   cost_decimals   = 4          # fraction digits a cost may have
#   min_ts          = 946684800  # 2000-01-01 UTC
#   max_ts          = 4102444800 # 2100-01-01 UTC
#   # What one plugin may write for one order; past them that pair is dead-lettered.
#   max_effects_per_order      = 1000
#   max_effect_bytes_per_order = 1048576
#   max_bitfield_bits          = 1048576 # highest BITFIELD bit: Redis grows the string to reach it
# }

# Under systemd the log goes to the journal: `journalctl -u eventhost`.
log {
  level  = "info"
  format = "text" # "json" for log shippers
}

metrics {
  listen = env("EVENTHOST_METRICS_LISTEN", "127.0.0.1:9464") # /metrics, /healthz, /readyz
}

plugin "sales-histogram" {
  config {
    counter  = "u32"
    overflow = "sat"
    timezone = "UTC"
  }
}

plugin "events-summary" {}

plugin "customer-invoices" {}
