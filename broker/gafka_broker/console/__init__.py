"""The web console: static pages (plain ES modules, no build step) and a proxy to the cluster's HTTP API."""
