{#- One row per distinct page path: its page type from the page_types seed (longest match). -#}
with

pages as (

    select distinct page
    from {{ ref('stg_lake__events') }}
    where page is not null

),

page_types as (

    select * from {{ ref('page_types') }}

),

matches as (

    select
        pages.page,
        page_types.page_type,
        row_number() over (
            partition by pages.page
            order by {{ dbt.length('page_types.page_prefix') }} desc
        ) as match_rank
    from pages
    inner join page_types
        on (
            page_types.match_type = 'exact'
            and pages.page = page_types.page_prefix
        )
        or (
            page_types.match_type = 'prefix'
            and {{ dbt.position('page_types.page_prefix', 'pages.page') }} = 1
        )

),

final as (

    select
        pages.page,
        coalesce(matches.page_type, 'other') as page_type
    from pages
    left join matches
        on
            pages.page = matches.page
            and matches.match_rank = 1

)

select * from final
