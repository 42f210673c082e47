"""Pixolution Flow (Solr) /image API: search by image, id, URL or colours, with Solr fq filters."""
