"""Deployment files (Dockerfile, docker-compose.yml, deploy/nginx/) checked and run for real where possible."""
