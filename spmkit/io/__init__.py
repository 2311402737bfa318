"""Small I/O and value helpers with no model in them: the bounded YAML reader, atomic writes, output-path
checks, ``--set`` override parsing and the numeric value types of the schemas."""
