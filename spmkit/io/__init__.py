"""Small I/O and value helpers with no model in them: the bounded YAML reader, atomic writes, output-path
checks, ``--set`` override parsing, the numeric value types of the schemas, the one device check
(``devices``), the one folder lock (``file_lock``) and the import of the user's own code (``user_code``)."""
