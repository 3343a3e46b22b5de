"""The one reader of the workers' aggregates: the tool functions and the queries under them."""
