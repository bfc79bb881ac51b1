# The tutorial's exact key layout: u8 histogram counters that wrap at 256, as
# listener_sales_analytics writes them. Use it when dashboards already read
# the tutorial's keys; config.hcl explains why it counts wider.

redis {
  address  = env("EVENTHOST_REDIS_ADDRESS", "127.0.0.1:6379")
  username = env("EVENTHOST_REDIS_USERNAME")
  password = env("EVENTHOST_REDIS_PASSWORD")
}

source "pubsub" {
  channels = ["purchase_orders"]
}

plugin_dir = "../bin/plugins"

metrics {
  listen = env("EVENTHOST_METRICS_LISTEN", "127.0.0.1:9464")
}

plugin "sales-histogram" {
  config {
    counter  = "u8"
    overflow = "wrap"
    timezone = "UTC"
  }
}

plugin "events-summary" {}

plugin "customer-invoices" {}
