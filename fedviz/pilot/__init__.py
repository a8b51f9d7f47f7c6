"""A pilot between real hosts: provisioning (CA, certificates, keys, one folder per party),
the role commands (coordinator, site) and the runs (pilot run / resume), on the Flower
engine's relay and nodes. Uses `fedviz.engines.flower`; never the dashboard's pages."""
