"""What the tests (and the benchmarks) run against: the block as a subprocess or in the image, SeaweedFS on
loopback, the loopback ingestion service, TCP proxies that delay or break connections, labelled datasets."""
