//! Simulated boiler hubs and refuse and repairs crews, for demos and load tests.
