"""Ways to run the protocol. Every engine moves the same role objects' messages and yields
the same typed events (`fedviz.events`): `inprocess` runs every party in one process;
`background` owns such a run in a thread for a long-lived client (the dashboard)."""
