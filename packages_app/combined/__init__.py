"""Combined channels: one URL serving the union of other channels (:mod:`.serving`),
merged by strict channel priority (:mod:`.merge`), built once per state of the members
and kept for every process (:mod:`.cache`)."""
