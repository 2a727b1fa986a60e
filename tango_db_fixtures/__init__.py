"""dsconfig JSON files that register the tango_groups device servers in a Tango database."""
