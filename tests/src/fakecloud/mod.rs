//! A fake of the DigitalOcean API and of each droplet's metadata service, faithful to
//! shared/docs/digitalocean.md, with fault injection and a record of every request.
