# eventhost configuration. `eventhost validate -config config.hcl` checks it,
# including every plugin's own config block. Relative paths are relative to
# this file. docs/configuration.md describes every setting.

redis {
  # env("NAME", "default"): secrets and per-machine settings stay out of this file.
  address  = env("EVENTHOST_REDIS_ADDRESS", "127.0.0.1:6379")
  username = env("EVENTHOST_REDIS_USERNAME")
  password = env("EVENTHOST_REDIS_PASSWORD")
  db       = 0
}

# Pub/Sub, as the tutorial's producer publishes. Orders published while no host
# is subscribed are found again by catch-up on start and after each reconnect.
source "pubsub" {
  channels = ["purchase_orders"]
  # sharded = true # SSUBSCRIBE/SPUBLISH: on a Redis Cluster, one master per channel
}

# Or a Redis Stream with a consumer group (`eventhost publish -stream` writes
# it): several hosts share the work, each order counted once.
# source "stream" {
#   stream         = "purchase_orders"
#   group          = "eventhost"
#   claim_idle     = "30s" # take over a dead host's pending entries after this long
#   max_deliveries = 5     # then dead-letter an entry that keeps failing
#   # shards       = 3     # read purchase_orders:{0} … {2}, spread over a cluster's masters
# }

# Order hashes are <order_key_prefix><id>, as the tutorial's producer writes them.
order_key_prefix = "purchase_order_details:"

# `make build` puts plugin binaries here as eventhost-plugin-<name>.
plugin_dir = "bin/plugins"

batch {
  max_orders = 512   # ids per batch: one HGETALL pipeline, one RPC per plugin, one atomic apply
  max_wait   = "0s"  # how long the first id of a batch waits for company: 0, go as soon as the pipeline is free
}

dead_letter {
  stream = "eventhost:deadletter" # `eventhost deadletter list` reads it
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

log {
  level  = "info"
  format = "text" # or "json"
}

metrics {
  listen = env("EVENTHOST_METRICS_LISTEN", "127.0.0.1:9464") # /metrics, /healthz, /readyz
}

plugin "sales-histogram" {
  timeout = "10s"
  config {
    # The tutorial counts in u8, which wraps at 256: a real Games sells more
    # than 255 tickets of an event in an hour, and the histogram then lies.
    # u32 counts to 4,294,967,295. `eventhost report` reads this setting.
    # examples/tutorial.hcl keeps u8 for dashboards that read the old layout.
    counter  = "u32"
    overflow = "sat" # should it ever fill, stick at the maximum instead of starting again at 0
    timezone = "UTC"
  }
}

plugin "events-summary" {}

plugin "customer-invoices" {}

# For the lowest latency, the three above can run as one plugin in one process
# (one call per batch instead of three): replace the three blocks with
#   plugin "tutorial-metrics" {
#     config {
#       counter  = "u32"
#       overflow = "sat"
#     }
#   }
# Never run both. docs/configuration.md, "Bundled plugins", says what the
# three then share, and how to switch a running deployment.
