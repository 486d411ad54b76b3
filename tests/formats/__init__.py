"""Tests of initserve.formats (a package so that test module names may repeat across tests/)."""
