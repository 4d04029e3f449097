"""Test support: real servers, isolated namespaces, a cuttable database link."""
