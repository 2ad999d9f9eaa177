"""The lab console: a page that races the two gateways and draws their waterfalls."""
