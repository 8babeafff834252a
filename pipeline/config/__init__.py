"""params.yaml as typed, validated, frozen dataclasses, and the rules between keys."""
