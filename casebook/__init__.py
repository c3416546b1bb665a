"""The case-record pages study staff work in: home, patient search, the case record by section."""
