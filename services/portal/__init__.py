"""The people's portal: pages for families (and, next, coordinators, professionals, funders and
ops) that call the four services' HTTP APIs with the person's own token, never their databases."""
